"""Powertools Logger, Metrics and (lazily) Tracer, wired once per sandbox.

Every function imports these objects; the service name and metrics namespace
come from ``POWERTOOLS_*`` environment variables set by the declaration. The
correlation id is API Gateway's request id. The Tracer pulls in the X-Ray SDK
and botocore (about 300 ms), so it is built on first use, not at import.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

logger = Logger(utc=True)
metrics = Metrics()


@cache
def tracer() -> Tracer:
    """The sandbox's Powertools Tracer (X-Ray), built on first use."""
    from aws_lambda_powertools import Tracer

    return Tracer()
