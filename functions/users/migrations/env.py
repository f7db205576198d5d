"""Alembic environment of the users service (schema ``users``, its own version table)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

config = context.config
schema = config.attributes.get("schema", "users")
version_table = config.attributes.get("version_table", "alembic_version_users")


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
