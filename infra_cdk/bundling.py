"""Lambda assets built on this machine, without Docker.

Three kinds of folder are staged under the git-ignored ``build/`` folder and
handed to ``Code.from_asset``:

* the dependency layer: ``uv export`` of the lock file's runtime dependencies,
  installed as manylinux aarch64 wheels for the Lambda CPython into
  ``python/``. It is keyed by the hash of ``uv.lock`` (plus the target), so a
  second synth or test session reuses it instead of reinstalling;
* the core layer: every package under ``layers/core`` copied to ``python/``;
* each function's code: its own folder with its parent package
  (``functions/__init__.py``), plus any extra folder such as Alembic scripts.

Content-addressed folder names make the staging safe for concurrent synths:
a folder is written under a temporary name and renamed into place whole.

Run ``python -m infra_cdk.bundling`` to prebuild the dependency layer and list it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build"

# Bump when the layout or the commands below change, so cached builds are not reused.
_BUILDER_VERSION = "1"
# Lambda's python3.12+ runtimes run on Amazon Linux 2023 (glibc 2.34): every
# manylinux wheel up to 2_34 is usable, and some locked wheels need more than 2014 (2_17).
LAYER_PLATFORM = "aarch64-manylinux_2_34"
_EXPORT_ARGS = (
    "export",
    "--frozen",
    "--no-dev",
    "--no-default-groups",
    "--no-emit-project",
    "--no-hashes",
)
# Distributions that belong to tests, tooling or the CDK app and never to a Lambda bundle.
FORBIDDEN_DISTRIBUTIONS = frozenset(
    {
        "aws-cdk-lib",
        "awslambdaric",
        "cdk-nag",
        "cfn-lint",
        "constructs",
        "hypothesis",
        "jsii",
        "moto",
        "mypy",
        "pytest",
        "ruff",
        "schemathesis",
        "uvicorn",
    }
)
_FORBIDDEN_PREFIXES = ("pytest-", "mypy-boto3", "boto3-stubs", "types-", "aws-cdk.")
_IGNORED = ("__pycache__", "*.pyc", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".DS_Store")


class BundlingError(RuntimeError):
    """An asset could not be staged; the message says what to fix."""


@dataclass(frozen=True)
class StagedAsset:
    """A folder ready for ``Code.from_asset`` and the content hash naming it."""

    path: Path
    digest: str


def normalize(name: str) -> str:
    """PEP 503 normal form of a distribution name."""
    return "-".join(part for part in name.lower().replace("_", "-").replace(".", "-").split("-"))


def find_uv(root: Path = REPO_ROOT) -> str:
    """The uv executable: the project's ``.tools/bin/uv`` first, then ``uv`` on PATH."""
    local = root / ".tools" / "bin" / "uv"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("uv")
    if found is None:
        raise BundlingError("uv not found: expected .tools/bin/uv or uv on PATH")
    return found


def _run(cmd: Sequence[str], cwd: Path) -> None:
    result = subprocess.run(  # noqa: S603 - fixed argument vector, no shell
        list(cmd), cwd=cwd, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise BundlingError(
            f"{' '.join(cmd)} failed with exit code {result.returncode}:\n"
            f"{result.stdout[-2000:]}{result.stderr[-4000:]}"
        )


def installed_distributions(layer: Path) -> set[str]:
    """Normalized names of the distributions installed in a layer folder."""
    names: set[str] = set()
    for info in (layer / "python").glob("*.dist-info"):
        metadata = info / "METADATA"
        name = info.name.removesuffix(".dist-info").rsplit("-", 1)[0]
        if metadata.is_file():
            for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
                if line.startswith("Name:"):
                    name = line.partition(":")[2].strip()
                    break
        names.add(normalize(name))
    return names


def forbidden_in(names: Iterable[str]) -> set[str]:
    """The names in ``names`` that must never ship in a Lambda bundle."""
    return {n for n in names if n in FORBIDDEN_DISTRIBUTIONS or n.startswith(_FORBIDDEN_PREFIXES)}


def dependency_layer(
    python_version: str,
    *,
    root: Path = REPO_ROOT,
    build_dir: Path | None = None,
    platform: str = LAYER_PLATFORM,
) -> StagedAsset:
    """The dependency layer for ``python_version`` built from ``uv.lock``, cached by its hash.

    Raises:
        BundlingError: uv is missing, a wheel is unavailable for the target, or a
            forbidden (dev/tooling) distribution ended up in the layer.
    """
    lock = root / "uv.lock"
    if not lock.is_file():
        raise BundlingError(f"{lock} not found: the dependency layer is built from the lock file")
    # Lambda cannot write bytecode (/opt is read-only): without .pyc files every cold
    # start compiles FastAPI, pydantic and the rest from source. Compiling needs an
    # interpreter of the target version; without one the layer ships sources only.
    compiler = target_interpreter(python_version)
    digest = _digest_bytes(
        [lock.read_bytes(), python_version.encode(), platform.encode(), _BUILDER_VERSION.encode()]
        + [arg.encode() for arg in _EXPORT_ARGS]
        + [b"bytecode" if compiler else b"sources"]
    )
    layers = (build_dir or BUILD_DIR) / "layers"
    target = layers / f"deps_py{python_version.replace('.', '')}_{digest[:16]}"
    if target.is_dir():
        return StagedAsset(target, digest)

    layers.mkdir(parents=True, exist_ok=True)
    uv = find_uv(root)
    with tempfile.TemporaryDirectory(dir=layers, prefix=".tmp-deps-") as tmp:
        work = Path(tmp)
        requirements = work / "requirements.txt"
        _run([uv, *_EXPORT_ARGS, "--output-file", str(requirements)], cwd=root)
        staged = work / "layer"
        _run(
            [
                uv,
                "pip",
                "install",
                "--quiet",
                "--no-deps",  # exactly the locked set: the export already lists every dependency
                "--only-binary",
                ":all:",
                "--python-platform",
                platform,
                "--python-version",
                python_version,
                "--link-mode",
                "copy",
                "--target",
                str(staged / "python"),
                "--requirement",
                str(requirements),
            ],
            cwd=root,
        )
        bad = forbidden_in(installed_distributions(staged))
        if bad:
            raise BundlingError(
                f"the dependency layer would ship dev/tooling packages: {sorted(bad)}"
            )
        if compiler is not None:
            _compile_bytecode(compiler, staged / "python")
        shutil.copyfile(requirements, layers / f"{target.name}.requirements.txt")
        _move_into_place(staged, target)
    _prune(layers, "deps_", keep=target.name)
    return StagedAsset(target, digest)


def target_interpreter(python_version: str) -> str | None:
    """A runnable CPython ``python_version``: on PATH, else a pyenv install; or None.

    A pyenv shim on PATH may exist and still fail (exit 127) when that version is
    not selected, so every candidate is run once and must report the version.
    """
    candidates = [shutil.which(f"python{python_version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += [
        str(p) for p in sorted(pyenv.glob(f"{python_version}.*/bin/python{python_version}"))
    ]
    for found in filter(None, candidates):
        probe = subprocess.run(  # noqa: S603 - fixed argument vector, no shell
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == python_version:
            return found
    return None


def _compile_bytecode(python: str, folder: Path) -> None:
    """Precompile ``folder`` with ``python``; hash-checked .pyc files survive zip timestamps."""
    _run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            str(folder),
        ],
        cwd=folder,
    )


def core_layer(*, root: Path = REPO_ROOT, build_dir: Path | None = None) -> StagedAsset:
    """The shared layer: every package under ``layers/core`` at ``python/<package>``."""
    source = root / "layers" / "core"
    packages = sorted(p for p in source.iterdir() if (p / "__init__.py").is_file())
    if not packages:
        raise BundlingError(f"{source} holds no Python package (a folder with __init__.py)")
    return _stage(
        [(p, Path("python") / p.name) for p in packages],
        (build_dir or BUILD_DIR) / "assets",
        "core-layer",
    )


def function_code(
    name: str,
    code_dir: str,
    *,
    extra_dirs: Iterable[str] = (),
    root: Path = REPO_ROOT,
    build_dir: Path | None = None,
) -> StagedAsset:
    """A function's asset: ``code_dir`` at its repo-relative path, with its parent packages.

    For ``functions/users`` the asset holds ``functions/__init__.py`` and
    ``functions/users/...``, so the handler ``functions.users.handler.handler``
    imports as it does from the repository root. ``extra_dirs`` (e.g. Alembic
    script folders of other services) are copied to their repo-relative paths.

    Raises:
        BundlingError: ``code_dir`` or one of ``extra_dirs`` does not exist.
    """
    source = root / code_dir
    if not source.is_dir():
        raise BundlingError(
            f"function {name!r}: code folder {code_dir!r} does not exist; create it "
            "or fix the handler in blueprint/platform.py"
        )
    items: list[tuple[Path, Path]] = []
    rel = Path(code_dir)
    for parent in reversed(rel.parents[:-1]):  # functions/ for functions/users
        init = root / parent / "__init__.py"
        if init.is_file():
            items.append((init, parent / "__init__.py"))
    items.append((source, rel))
    for extra in sorted(set(extra_dirs)):
        extra_rel = Path(extra)
        if extra_rel == rel or rel in extra_rel.parents:
            continue  # already inside the code folder
        if not (root / extra_rel).is_dir():
            raise BundlingError(f"function {name!r}: folder {extra!r} does not exist")
        items.append((root / extra_rel, extra_rel))
    return _stage(items, (build_dir or BUILD_DIR) / "assets", f"function-{name}")


def _files(items: Sequence[tuple[Path, Path]]) -> list[tuple[Path, Path]]:
    """Every (source file, destination path) pair, ignored names left out, sorted."""
    out: list[tuple[Path, Path]] = []
    ignore = shutil.ignore_patterns(*_IGNORED)
    for src, dest in items:
        if src.is_file():
            out.append((src, dest))
            continue
        for dirpath, dirnames, filenames in os.walk(src):
            skipped = ignore(dirpath, [*dirnames, *filenames])
            dirnames[:] = sorted(d for d in dirnames if d not in skipped)
            base = Path(dirpath)
            for filename in sorted(f for f in filenames if f not in skipped):
                out.append((base / filename, dest / base.relative_to(src) / filename))
    return sorted(out, key=lambda pair: pair[1].as_posix())


def _stage(items: Sequence[tuple[Path, Path]], parent: Path, prefix: str) -> StagedAsset:
    files = _files(items)
    chunks: list[bytes] = []
    for src, dest in files:
        chunks += [dest.as_posix().encode(), b"\0", src.read_bytes(), b"\0"]
    digest = _digest_bytes(chunks)
    target = parent / f"{prefix}_{digest[:16]}"
    if target.is_dir():
        return StagedAsset(target, digest)
    parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=parent, prefix=f".tmp-{prefix}-") as tmp:
        staged = Path(tmp) / "asset"
        staged.mkdir()
        for src, dest in files:
            (staged / dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, staged / dest)
        _move_into_place(staged, target)
    _prune(parent, f"{prefix}_", keep=target.name)
    return StagedAsset(target, digest)


def _move_into_place(staged: Path, target: Path) -> None:
    try:
        staged.rename(target)
    except OSError:
        if not target.is_dir():  # a concurrent build of the same content won the race otherwise
            raise


def _prune(parent: Path, prefix: str, *, keep: str) -> None:
    """Remove older builds with the same prefix (best effort)."""
    for old in parent.glob(f"{prefix}*"):
        if old.name != keep and not old.name.startswith(f"{keep}."):
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def _digest_bytes(chunks: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(len(chunk).to_bytes(8, "big"))
        h.update(chunk)
    return h.hexdigest()


def main() -> int:
    """Prebuild the dependency layer for the Lambda runtime and print what it holds."""
    from infra_cdk.config import python_version  # imported here: the module itself needs no CDK

    layer = dependency_layer(python_version())
    names = sorted(installed_distributions(layer.path))
    print(f"{layer.path} ({len(names)} distributions)")
    print(" ".join(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
