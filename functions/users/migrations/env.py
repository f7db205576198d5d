"""Alembic environment of the users service (schema ``users``, its own version table)."""

from lwm_core.migrations import run_online

run_online("users")
