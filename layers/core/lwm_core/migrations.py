"""The body of every service's Alembic ``env.py``: one schema, its own version table.

``db-migrate`` passes ``schema`` and ``version_table`` in the Alembic config's
attributes; a service's ``env.py`` names its defaults and calls :func:`run_online`.
"""

from __future__ import annotations


def run_online(default_schema: str) -> None:
    """Apply the service's revisions in its schema, under an advisory lock per schema."""
    from alembic import context
    from sqlalchemy import create_engine, text

    config = context.config
    schema = config.attributes.get("schema", default_schema)
    version_table = config.attributes.get("version_table", f"alembic_version_{default_schema}")
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
