"""The local mailbox: email the platform sent through SES, read from the local AWS endpoint.

moto keeps every message ``ses:SendEmail`` accepted; this module lists them
(newest last) and finds links and tokens in them, for people (`python -m
local_runtime mail`), the demo seed and the tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

_TOKEN = re.compile(r"(?:[?&]|\b)token=([A-Za-z0-9_\-]+)")


@dataclass(frozen=True)
class Mail:
    """One sent message."""

    id: str
    sender: str
    to: tuple[str, ...]
    subject: str
    body: str

    def token(self) -> str | None:
        """The first ``token=`` value in the body (a verification link, a reset token)."""
        match = _TOKEN.search(self.body)
        return match.group(1) if match else None


def read_mailbox(aws_endpoint: str, to: str | None = None) -> list[Mail]:
    """Every message sent so far (to ``to`` only, when given), oldest first."""
    response = httpx.get(f"{aws_endpoint.rstrip('/')}/moto-api/data.json", timeout=10)
    response.raise_for_status()
    raw = response.json().get("ses", {}).get("Message", [])
    mails = [
        Mail(
            id=m["id"],
            sender=m.get("source", ""),
            to=tuple(m.get("destinations", {}).get("ToAddresses", [])),
            subject=m.get("subject", ""),
            body=m.get("body", ""),
        )
        for m in raw
    ]
    if to is not None:
        wanted = to.strip().lower()
        mails = [m for m in mails if wanted in (t.lower() for t in m.to)]
    return mails


def latest_token(aws_endpoint: str, to: str, subject_contains: str) -> str | None:
    """The token in the newest message to ``to`` whose subject contains ``subject_contains``."""
    for mail in reversed(read_mailbox(aws_endpoint, to)):
        if subject_contains.lower() in mail.subject.lower():
            return mail.token()
    return None
