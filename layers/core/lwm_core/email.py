"""Email addresses and transactional email through SES (readable locally in moto's store).

Addresses are checked by the rule browsers apply to ``<input type="email">``
(WHATWG HTML), with internationalized domains accepted through IDNA and
Unicode local parts allowed (SMTPUTF8). It is a syntax check only: a person
proves an address is theirs by following the verification link. (The
email-validator package would also do, but FastAPI imports it whenever it is
installed, which put about 100 ms on every cold start.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MAX_ADDRESS = 254  # RFC 5321 path limit, less the angle brackets
MAX_LOCAL = 64
_LOCAL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~\-\u00a0-\U0010FFFF]+$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class InvalidAddressError(ValueError):
    """The text is not an email address the platform can send to."""


def normalize_address(address: str) -> str:
    """``address`` checked, with its domain in lower case and IDNA-decoded to Unicode.

    Raises:
        InvalidAddressError: saying what is wrong.
    """
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidAddressError("an address has one @ with text on both sides")
    if len(local) > MAX_LOCAL or not _LOCAL.match(local):
        raise InvalidAddressError("the part before @ has characters an address cannot have")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise InvalidAddressError("the part before @ cannot start or end with a dot, or repeat one")
    try:
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError as e:
        raise InvalidAddressError("the domain is not a valid domain name") from e
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidAddressError("the domain needs a dot and letters, digits or hyphens")
    if labels[-1].isdigit():
        raise InvalidAddressError("the domain cannot end in a number")
    normalized = f"{local}@{ascii_domain.encode('ascii').decode('idna')}"
    if len(normalized.encode("utf-8")) > MAX_ADDRESS:
        raise InvalidAddressError(f"an address has at most {MAX_ADDRESS} bytes")
    return normalized


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
