"""The local stack the integration and end-to-end tests share: one per test process.

``LocalPlatform`` is the same runtime ``make dev`` starts, on ports the OS
chooses, with its PostgreSQL cluster in a throwaway folder. The helpers here
talk to it the way a client does (httpx) or the way AWS tooling does (boto3 at
the local endpoint).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx

from local_runtime import LocalPlatform, Ports
from local_runtime.mailbox import latest_token

PASSWORD = "correct horse battery 42"


@contextmanager
def running_platform(**kwargs: Any) -> Iterator[LocalPlatform]:
    """A started ``LocalPlatform`` on free ports; stopped and its data removed afterwards."""
    # The cluster's folder must be reachable by the postgres user (initdb refuses root).
    root = Path(tempfile.mkdtemp(prefix="lwm-test-"))
    root.chmod(0o755)
    local = LocalPlatform(ports=Ports.ephemeral(), pg_dir=root / "pg", **kwargs)
    try:
        local.start()
        yield local
    finally:
        local.stop()
        shutil.rmtree(root, ignore_errors=True)


def boto(local: LocalPlatform, service: str) -> Any:
    """A boto3 client for the local AWS endpoint."""
    return boto3.client(
        service,
        endpoint_url=local.endpoints.aws,
        region_name=local.endpoints.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def unique_email(prefix: str = "user") -> str:
    """A fresh address, so tests never collide on the shared stack."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}@example.com"


@dataclass
class Account:
    """A registered (and usually verified) account with its current tokens."""

    id: str
    email: str
    password: str
    access_token: str
    refresh_token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.access_token}"}


def register(
    api: httpx.Client,
    aws_endpoint: str,
    *,
    roles: tuple[str, ...] = ("mentee",),
    verify: bool = True,
    prefix: str = "user",
    timezone: str = "Europe/Berlin",
    source_ip: str | None = None,
) -> Account:
    """Register through the API, follow the emailed verification link, and sign in."""
    email = unique_email(prefix)
    headers = {"x-forwarded-for": source_ip} if source_ip else {}
    created = api.post(
        "/auth/register",
        json={
            "email": email,
            "password": PASSWORD,
            "display_name": prefix.title(),
            "timezone": timezone,
            "roles": list(roles),
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    if verify:
        token = latest_token(aws_endpoint, email, "confirm")
        assert token, f"no verification mail for {email}"
        verified = api.get("/auth/verify-email", params={"token": token})
        assert verified.status_code == 200, verified.text
    login = api.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert login.status_code == 200, login.text
    tokens = login.json()
    return Account(
        created.json()["user"]["id"],
        email,
        PASSWORD,
        tokens["access_token"],
        tokens["refresh_token"],
    )
