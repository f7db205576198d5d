"""Fixtures shared by every test level: the local stack for integration and e2e tests.

One ``LocalPlatform`` per test process (pytest-xdist runs two), started on
first use and stopped at the end of the session. It is the runtime ``make dev``
starts, with the per-client rate limits raised: every test client shares the
source address 127.0.0.1, which API Gateway would see as many clients.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from local_runtime import LocalPlatform
from tests.stack import running_platform

# Per-client limits raised for the shared stack; the per-account login limit
# (login-fail-account) keeps its production value so brute force is tested as deployed.
TEST_RATE_LIMITS = {
    "ip-route": (100_000, 60),
    "register-ip": (100_000, 3600),
    "forgot-ip": (100_000, 3600),
    "login-fail-client": (100_000, 900),
}


@pytest.fixture(scope="session")
def local() -> Iterator[LocalPlatform]:
    """The running local platform (moto, PostgreSQL, workers, gateway) of this test process."""
    env = {"users": {"LWM_RATE_LIMITS": json.dumps(TEST_RATE_LIMITS)}}
    with running_platform(environment=env) as platform:
        yield platform


@pytest.fixture(scope="session")
def api_url(local: LocalPlatform) -> str:
    return local.endpoints.http_api


@pytest.fixture(scope="session")
def aws_endpoint(local: LocalPlatform) -> str:
    return local.endpoints.aws


@pytest.fixture
def api(api_url: str) -> Iterator[httpx.Client]:
    """An HTTP client of the local HTTP API (a real connection through the gateway)."""
    with httpx.Client(base_url=api_url, timeout=30, trust_env=False) as client:
        yield client
