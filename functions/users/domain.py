"""Domain model of the users service and the ports its logic talks to.

Plain dataclasses and Protocols: no SQLAlchemy, no boto3. ``data.py`` holds
the adapters; ``tests/unit`` has in-memory fakes of the same ports.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from lwm_core.pagination import Page


class MentorSort(StrEnum):
    """Orders of the mentor directory."""

    PRICE_ASC = "price_asc"
    PRICE_DESC = "price_desc"
    EXPERIENCE = "experience"
    NEWEST = "newest"


@dataclass
class MentorProfile:
    """What a mentor shows the world."""

    headline: str = ""
    bio: str = ""
    skills: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    hourly_rate_minor: int | None = None
    currency: str | None = None
    timezone: str | None = None
    years_experience: int = 0
    links: list[str] = field(default_factory=list)
    listed_at: datetime | None = None

    @property
    def complete(self) -> bool:
        """Complete enough to appear in discovery."""
        return bool(
            self.headline
            and self.skills
            and self.languages
            and self.hourly_rate_minor is not None
            and self.currency
        )


@dataclass
class MenteeProfile:
    """What a mentee is looking for."""

    goals: str = ""
    interests: list[str] = field(default_factory=list)


@dataclass
class User:
    """An account: one person, who may be mentee, mentor, both, and admin."""

    id: str
    email: str
    display_name: str
    timezone: str
    roles: set[str]
    created_at: datetime
    password_hash: str | None = None
    email_verified_at: datetime | None = None
    deleted_at: datetime | None = None
    mentor: MentorProfile | None = None
    mentee: MenteeProfile | None = None

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    @property
    def listed(self) -> bool:
        """Visible in the mentor directory."""
        return bool(
            "mentor" in self.roles
            and self.email_verified
            and self.deleted_at is None
            and self.mentor is not None
            and self.mentor.complete
        )


@dataclass(frozen=True)
class Identity:
    """A link between an account and an external OpenID Connect subject."""

    provider: str
    subject: str
    user_id: str
    email: str | None


@dataclass(frozen=True)
class MentorQuery:
    """A mentor-directory search."""

    skill: str | None = None
    language: str | None = None
    currency: str | None = None
    min_price: int | None = None
    max_price: int | None = None
    sort: MentorSort = MentorSort.NEWEST
    limit: int = 20
    cursor: str | None = None


@dataclass(frozen=True)
class RefreshRecord:
    """A stored refresh token (by hash) and the family it belongs to."""

    token_hash: str
    family_id: str
    user_id: str
    expires_at: int
    used: bool


@dataclass(frozen=True)
class OneTimeToken:
    """An emailed token (email verification or password reset), stored by hash."""

    token_hash: str
    purpose: str
    user_id: str
    expires_at: int


# --- ports -----------------------------------------------------------------------


class UserRepository(Protocol):
    """Accounts and profiles (PostgreSQL)."""

    def add(self, user: User) -> None: ...
    def get(self, user_id: str) -> User | None: ...
    def get_by_email(self, email: str) -> User | None: ...
    def save(self, user: User) -> None: ...
    def list_users(self, limit: int, cursor: str | None) -> Page[User]: ...
    def search_mentors(self, query: MentorQuery) -> Page[User]: ...
    def get_identity(self, provider: str, subject: str) -> Identity | None: ...
    def add_identity(self, identity: Identity) -> None: ...
    def identities_of(self, user_id: str) -> Sequence[Identity]: ...
    def delete_identities(self, user_id: str) -> None: ...


class Uow(Protocol):
    """A transaction over the user repository."""

    @property
    def users(self) -> UserRepository: ...

    def commit(self) -> None: ...


class TokenStore(Protocol):
    """Refresh-token families and one-time tokens (DynamoDB, expiring by TTL)."""

    def put_refresh(self, record: RefreshRecord, created_at: int) -> None: ...
    def get_refresh(self, token_hash: str) -> RefreshRecord | None: ...
    def mark_refresh_used(self, token_hash: str) -> bool: ...
    def family_revoked(self, family_id: str) -> bool: ...
    def revoke_family(self, family_id: str) -> None: ...
    def revoke_user(self, user_id: str) -> int: ...
    def put_one_time(self, token: OneTimeToken) -> None: ...
    def consume_one_time(self, token_hash: str, purpose: str, now: int) -> OneTimeToken | None: ...
    def put_login_state(self, state: str, data: dict[str, str], expires_at: int) -> None: ...
    def pop_login_state(self, state: str, now: int) -> dict[str, str] | None: ...


class Signer(Protocol):
    """Signs access-token claims (KMS in every runtime)."""

    def sign(self, claims: dict[str, object]) -> str: ...


class Mailer(Protocol):
    """Sends one email; raises ``errors.MailNotSentError`` when it could not."""

    def send_mail(self, to: str, subject: str, text: str) -> None: ...


class PasswordHasher(Protocol):
    """argon2id hashing."""

    def hash(self, password: str) -> str: ...
    def verify(self, hashed: str, password: str) -> bool: ...
    def needs_rehash(self, hashed: str) -> bool: ...
