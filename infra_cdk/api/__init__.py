"""The stateless stack: layers, functions, the HTTP API, schedules and the migration trigger."""
