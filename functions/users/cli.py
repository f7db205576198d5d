"""Operator commands of the users service (admin is granted only here).

    python -m functions.users.cli grant-admin EMAIL

Reads the database location like the function does (``DATABASE_URL``, or the
RDS Proxy host and credentials secret); with `make dev` running, the local
values are in ``.local/endpoints.json`` and used automatically.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from functions.users import errors, logic
from functions.users.data import PostgresUow
from lwm_core import constants as c
from lwm_core.db import database_url
from lwm_core.settings import DatabaseSettings

_ENDPOINTS = Path(__file__).resolve().parents[2] / ".local" / "endpoints.json"


def _settings() -> DatabaseSettings:
    if not os.environ.get(c.ENV_DATABASE_URL) and _ENDPOINTS.exists():
        local = json.loads(_ENDPOINTS.read_text()).get("database_url")
        if local:
            os.environ[c.ENV_DATABASE_URL] = local
    return DatabaseSettings()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m functions.users.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    grant = sub.add_parser("grant-admin", help="give an existing account the admin role")
    grant.add_argument("email")
    args = parser.parse_args(argv)

    url = database_url(_settings())
    try:
        user = logic.grant_admin(lambda: PostgresUow(url), args.email)
    except errors.UserNotFoundError as e:
        print(f"error: {e.detail}", file=sys.stderr)
        return 1
    print(f"{user.email} ({user.id}) now holds: {', '.join(sorted(user.roles))}")
    print("the new role appears in tokens issued from now on (sign in or refresh)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
