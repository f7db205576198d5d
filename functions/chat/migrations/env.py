"""Alembic environment of chat's PostgreSQL schema (``chat``: the message search index).

``db-migrate`` finds this folder as service ``chat`` and passes the schema and
version table (``alembic_version_chat``, in the schema), so chat's revisions
never mix with another service's.
"""

from lwm_core.migrations import run_online

run_online("chat")
