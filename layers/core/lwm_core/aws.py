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
def client(service: str, endpoint_url: str | None = None) -> Any:
    """A boto3 client for ``service``, built on first use and reused after.

    ``endpoint_url``: for APIs whose endpoint is the resource itself, such as a
    WebSocket API's ``@connections``; otherwise boto3 finds it (``AWS_ENDPOINT_URL``).
    """
    from botocore.config import Config

    config = Config(
        retries={"mode": "standard", "max_attempts": 3},
        connect_timeout=2,
        read_timeout=10,
        max_pool_connections=50,  # pushes post to many connections at once
    )
    return _session().client(service, config=config, endpoint_url=endpoint_url)


def credentials() -> Any:
    """The sandbox's AWS credentials (botocore refreshes them before they expire)."""
    return _session().get_credentials()
