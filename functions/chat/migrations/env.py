"""Alembic environment of chat's PostgreSQL schema (``chat``: the message search index).

``db-migrate`` finds this folder as service ``chat`` and passes the schema and
version table (``alembic_version_chat``, in the schema), so chat's revisions
never mix with another service's.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

config = context.config
schema = config.attributes.get("schema", "chat")
version_table = config.attributes.get("version_table", "alembic_version_chat")


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        connection.commit()
        context.configure(
            connection=connection,
            version_table=version_table,
            version_table_schema=schema,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            # Serialise concurrent deploys/starts on one advisory lock per schema.
            connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:s))"), {"s": schema})
            context.run_migrations()
    engine.dispose()


run_migrations_online()
