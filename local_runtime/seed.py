"""Demo data for ``python -m local_runtime up --seed``, loaded once the stack is up.

The accounts and profiles are in :mod:`local_runtime.demo_data`; they are
written through the public API (register, verify by the emailed link, sign
in, fill the profile), so seeding exercises the same path as a client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from local_runtime import demo_data

log = logging.getLogger("local_runtime.seed")


def seed(endpoints: Mapping[str, Any]) -> None:
    """Load the demo data through the HTTP API at ``endpoints["http_api"]``."""
    emails = demo_data.seed(str(endpoints["http_api"]), str(endpoints["aws"]))
    log.info(
        "seed: %d demo accounts ready (password %r), e.g. %s",
        len(emails),
        demo_data.DEMO_PASSWORD,
        ", ".join(emails[:2] + emails[-1:]),
    )
