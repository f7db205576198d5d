"""PynamoDB models bound to the tables the declaration names.

Models declare attributes only; :func:`bind` sets the physical table name,
region and endpoint from settings once per sandbox, so the same model works
against moto locally and DynamoDB in AWS.
"""

from __future__ import annotations

from pynamodb.models import Model


class LwmModel(Model):
    """Base of every platform PynamoDB model; bind it before first use."""

    class Meta:
        abstract = True
        table_name = ""


def bind(model: type[Model], table_name: str, region: str, host: str | None = None) -> None:
    """Point ``model`` at ``table_name`` (idempotent; resets a cached connection)."""
    meta = model.Meta
    if getattr(meta, "table_name", None) == table_name and getattr(meta, "host", None) == host:
        return
    meta.table_name = table_name
    meta.region = region
    meta.host = host
    model._connection = None
