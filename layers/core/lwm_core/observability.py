"""Powertools Logger, Tracer and Metrics, wired once per sandbox.

Every function imports these three objects; the service name and metrics
namespace come from ``POWERTOOLS_*`` environment variables set by the
declaration. The correlation id is API Gateway's request id.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(utc=True)
tracer = Tracer()
metrics = Metrics()
