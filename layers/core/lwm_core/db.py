"""PostgreSQL access: one engine per sandbox, a unit of work, and migrations.

Writes go through :class:`UnitOfWork`: commit explicitly; leaving the block
without committing rolls back. SQLAlchemy is imported lazily, on first use.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any, Self

from lwm_core.settings import DatabaseSettings

if TYPE_CHECKING:
    from types import TracebackType

    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session


IAM_AUTH_PARAM = "iam_auth"  # query parameter of our URLs only; never reaches the driver


def database_url(settings: DatabaseSettings) -> str:
    """The SQLAlchemy URL: ``DATABASE_URL`` locally; the RDS Proxy with IAM auth in AWS.

    In AWS the proxy requires TLS and an IAM token instead of a password: the URL
    carries the user, host and port from the credentials secret, no password, and
    ``iam_auth=<region>``, which :func:`engine` turns into a fresh token per connection.
    """
    if settings.database_url:
        url = settings.database_url
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        return url
    from aws_lambda_powertools.utilities import parameters
    from sqlalchemy.engine import URL

    assert settings.database_secret_arn and settings.database_host
    secret: Any = parameters.get_secret(settings.database_secret_arn, max_age=300)
    creds = json.loads(secret) if isinstance(secret, str) else secret
    return URL.create(
        "postgresql+psycopg",
        username=creds["username"],
        host=settings.database_host,
        port=int(creds.get("port", 5432)),
        database=settings.database_name,
        query={"sslmode": "require", IAM_AUTH_PARAM: settings.aws_region},
    ).render_as_string(hide_password=False)


@cache
def engine(url: str) -> Engine:
    """The sandbox's engine for ``url``: a small pool, since one sandbox serves one request."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    region = parsed.query.get(IAM_AUTH_PARAM)
    if isinstance(region, tuple):
        region = region[0]
    parsed = parsed.difference_update_query([IAM_AUTH_PARAM])
    created = create_engine(
        parsed,
        pool_size=2,
        max_overflow=2,
        pool_pre_ping=True,
        pool_recycle=300,
        connect_args={"connect_timeout": 5},
    )
    if region:
        host, port, user = parsed.host, parsed.port or 5432, parsed.username

        @event.listens_for(created, "do_connect")
        def _iam_token(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
            # A token is valid for 15 minutes; each new connection signs a fresh one (no call).
            from lwm_core.aws import client

            cparams["password"] = client("rds").generate_db_auth_token(
                DBHostname=host, Port=port, DBUsername=user, Region=region
            )

    return created


class UnitOfWork:
    """A transaction: ``with uow: ...; uow.commit()``; leaving uncommitted rolls back."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._session: Session | None = None
        self.committed = False

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("use the unit of work inside `with uow:`")
        return self._session

    def __enter__(self) -> Self:
        from sqlalchemy.orm import Session

        self._session = Session(engine(self._url), expire_on_commit=False)
        self.committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        try:
            if not self.committed:
                self._session.rollback()
        finally:
            self._session.close()
            self._session = None

    def commit(self) -> None:
        self.session.commit()
        self.committed = True

    def rollback(self) -> None:
        self.session.rollback()


def migrate(url: str, script_location: str, version_table: str, schema: str) -> None:
    """Upgrade one service's schema to head with its own Alembic scripts and version table."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location)
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["version_table"] = version_table
    config.attributes["schema"] = schema
    command.upgrade(config, "head")
