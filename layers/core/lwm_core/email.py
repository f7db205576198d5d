"""Transactional email through SES (readable locally in moto's SES store)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Email:
    """One message to one recipient."""

    to: str
    subject: str
    text: str
    html: str | None = None


class SesMailer:
    """Sends :class:`Email` through SES v1 ``SendEmail``."""

    def __init__(self, sender: str, ses: Any | None = None) -> None:
        self._sender = sender
        self._ses = ses

    @property
    def ses(self) -> Any:
        if self._ses is None:
            from lwm_core.aws import client

            self._ses = client("ses")
        return self._ses

    def send(self, email: Email) -> str:
        """Send ``email``; returns the SES message id."""
        body: dict[str, dict[str, str]] = {"Text": {"Data": email.text, "Charset": "UTF-8"}}
        if email.html:
            body["Html"] = {"Data": email.html, "Charset": "UTF-8"}
        response = self.ses.send_email(
            Source=self._sender,
            Destination={"ToAddresses": [email.to]},
            Message={"Subject": {"Data": email.subject, "Charset": "UTF-8"}, "Body": body},
        )
        return str(response["MessageId"])
