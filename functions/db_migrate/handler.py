"""Applies every service's Alembic migrations (run by the deploy trigger and by `make dev`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lwm_core.db import database_url, migrate
from lwm_core.observability import logger
from lwm_core.settings import DatabaseSettings

_ROOT = Path(__file__).resolve().parents[2]


def discover(root: Path = _ROOT) -> dict[str, Path]:
    """Every service with Alembic scripts: ``functions/<service>/migrations`` (schema = service)."""
    return {
        p.parent.parent.name: p.parent for p in sorted(root.glob("functions/*/migrations/env.py"))
    }


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Upgrade each service's schema to head; returns the services migrated."""
    url = database_url(DatabaseSettings())
    done = []
    for service, folder in discover().items():
        migrate(url, str(folder), version_table=f"alembic_version_{service}", schema=service)
        logger.info("migrated", extra={"service": service})
        done.append(service)
    return {"migrated": done}
