"""AWS clients built once per sandbox, honouring the local endpoint.

boto3 reads ``AWS_ENDPOINT_URL`` itself, so the same code talks to moto
locally and to AWS when deployed. Clients are cached per service name; pass
your own client to adapters in tests instead of patching.
"""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def _session() -> Any:
    import boto3  # lazy: not every invocation talks to AWS

    return boto3.session.Session()


@cache
def client(service: str) -> Any:
    """A boto3 client for ``service``, built on first use and reused after."""
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2, read_timeout=10
    )
    return _session().client(service, config=config)
