#!/usr/bin/env bash
# Prepare this machine for `make dev` / `make test`: system packages when missing,
# a pinned uv, the virtualenv from uv.lock and the npm tools from package-lock.json.
# Idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
need_apt=()

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || need_apt+=(postgresql)
command -v node >/dev/null && command -v npm >/dev/null || need_apt+=(nodejs npm)
# Debian's Chromium for the web client's browser test (Playwright drives it; no `playwright install`).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing system packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The Debian package starts a cluster of its own; the platform runs its own throwaway one.
  $SUDO service postgresql stop >/dev/null 2>&1 || true
fi

if [ ! -x .tools/bin/uv ] || [ "$(.tools/bin/uv --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
  echo "setup: installing uv $UV_VERSION into .tools/"
  python3 -m venv .tools
  .tools/bin/pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
fi

.tools/bin/uv sync --frozen --quiet --python python3

# The repository and the shared layer on the venv's path (as PYTHONPATH in the Makefile),
# so that `.venv/bin/python -m local_runtime …` and the operator CLIs work from anywhere.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n%s\n' "$PWD" "$PWD/layers/core" > "$site/linkwithmentor.pth"

if [ -f package-lock.json ]; then
  lock_hash=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ ! -f node_modules/.lock-hash ] || [ "$(cat node_modules/.lock-hash)" != "$lock_hash" ]; then
    echo "setup: installing npm tools from package-lock.json"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$lock_hash" > node_modules/.lock-hash
  fi
fi
