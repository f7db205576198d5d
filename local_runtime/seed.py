"""Demo data for ``python -m local_runtime up --seed``.

The hook is called once the whole stack is up, with the endpoints that
``.local/endpoints.json`` holds. The demo data is written against the public
API (register, log in, fill profiles), so that it exercises the same path as
a client; that code belongs with the services and replaces this placeholder.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("local_runtime.seed")


def seed(endpoints: Mapping[str, Any]) -> None:
    """Load the demo data through the HTTP API at ``endpoints["http_api"]``."""
    log.info("seed: no demo data yet (local_runtime/seed.py is a placeholder)")
