"""Wiring of the users service: settings and adapters, built once per sandbox (lazily)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from functions.users.logic import Config, Deps

if TYPE_CHECKING:
    from functions.users.settings import UsersSettings
    from lwm_core.ratelimit import RateLimiter


@cache
def settings() -> UsersSettings:
    """The function's settings, read and validated once per sandbox."""
    from functions.users.settings import UsersSettings

    return UsersSettings()


class Argon2Hasher:
    """argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile)."""

    def __init__(self) -> None:
        from argon2 import PasswordHasher

        self._ph = PasswordHasher()

    def hash(self, password: str) -> str:
        return self._ph.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        from argon2.exceptions import InvalidHashError, VerificationError

        try:
            return self._ph.verify(hashed, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, hashed: str) -> bool:
        return self._ph.check_needs_rehash(hashed)


class KmsSigner:
    """Signs access tokens with the active KMS key."""

    def __init__(self, key_ids: str) -> None:
        from lwm_core.tokens import KmsKeyRing

        self.ring = KmsKeyRing.from_setting(key_ids)

    def sign(self, claims: dict[str, object]) -> str:
        return self.ring.sign(claims)


class SesMail:
    """Sends plain-text mail through SES."""

    def __init__(self, sender: str) -> None:
        from lwm_core.email import SesMailer

        self._mailer = SesMailer(sender)

    def send_mail(self, to: str, subject: str, text: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        from functions.users.errors import MailNotSentError
        from lwm_core.email import Email

        try:
            self._mailer.send(Email(to=to, subject=subject, text=text))
        except (BotoCoreError, ClientError) as e:
            raise MailNotSentError(str(e)) from e


def _bind_tables(s: UsersSettings) -> None:
    from functions.users.data import AuthItem
    from lwm_core.dynamo import bind
    from lwm_core.ratelimit_store import RateCounter

    bind(AuthItem, s.auth_table, s.aws_region, s.aws_endpoint_url)
    bind(RateCounter, s.rate_limit_table, s.aws_region, s.aws_endpoint_url)


@cache
def deps() -> Deps:
    """The users logic's collaborators, real adapters."""
    from functions.users.data import DynamoTokenStore, PostgresUow
    from lwm_core.db import database_url

    s = settings()
    _bind_tables(s)
    url = database_url(s)
    return Deps(
        config=Config(issuer=s.issuer, audience=s.audience, base_url=s.base_url),
        uow=lambda: PostgresUow(url),
        tokens=DynamoTokenStore(),
        signer=signer(),
        mailer=SesMail(s.mail_from),
        hasher=Argon2Hasher(),
    )


@cache
def limiter() -> RateLimiter:
    from lwm_core.ratelimit import RateLimiter

    _bind_tables(settings())
    return RateLimiter(overrides=settings().rate_limits)


@cache
def signer() -> KmsSigner:
    return KmsSigner(settings().signing_keys)
