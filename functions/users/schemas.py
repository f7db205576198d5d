"""Request and response bodies of the users API (the OpenAPI contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    HttpUrl,
    StringConstraints,
    WithJsonSchema,
)

from functions.users.domain import MenteeProfile, MentorProfile, User
from lwm_core.email import InvalidAddressError, normalize_address
from lwm_core.models import StrictModel, trim


def _lower(value: str) -> str:
    return value.strip().lower()


def _upper(value: str) -> str:
    return value.upper()


def _email(value: str) -> str:
    try:
        return normalize_address(value)
    except InvalidAddressError as e:
        raise ValueError(f"value is not a valid email address: {e}") from e


Email = Annotated[
    str,
    StringConstraints(max_length=320),
    AfterValidator(_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": 320}),
]

# Codes are accepted in any case (as the patterns say) and stored folded.
Skill = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9+#. -]{0,39}$"),
    AfterValidator(_lower),
]
Language = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2,3}$"), AfterValidator(_lower)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{3}$"), AfterValidator(_upper)]
Interest = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(trim(1))]
DisplayName = Annotated[
    str, StringConstraints(min_length=1, max_length=80), AfterValidator(trim(1))
]
LoginEmail = Annotated[
    str, StringConstraints(min_length=3, max_length=320), AfterValidator(trim(3))
]
Timezone = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
# A password being set: the length part of the policy is in the contract (the rest is checked
# by the service: not common, not the email's name).
NewPassword = Annotated[str, StringConstraints(min_length=10, max_length=128)]
# The highest hourly rate, in minor units (1,000,000.00 in a two-decimal currency).
MAX_RATE = 100_000_000
SelfServiceRole = Literal["mentee", "mentor"]
AnyRole = Literal["mentee", "mentor", "admin"]


def _default_roles() -> list[SelfServiceRole]:
    return ["mentee"]


class RegisterIn(StrictModel):
    email: Email
    password: NewPassword
    display_name: DisplayName
    timezone: Timezone = Field(description="IANA time zone, e.g. Europe/Berlin")
    roles: list[SelfServiceRole] = Field(default_factory=_default_roles, min_length=1, max_length=2)


class LoginIn(StrictModel):
    email: LoginEmail
    password: Password


class RefreshIn(StrictModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class TokenIn(StrictModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class ForgotPasswordIn(StrictModel):
    email: LoginEmail


class ResetPasswordIn(StrictModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    new_password: NewPassword


class SwitchRoleIn(StrictModel):
    role: AnyRole


class AddRoleIn(StrictModel):
    role: SelfServiceRole


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (OAuth token type)
    expires_in: int
    active_role: AnyRole


class MessageOut(BaseModel):
    message: str


class MentorProfileIn(StrictModel):
    headline: Annotated[str, StringConstraints(max_length=140), AfterValidator(trim())] | None = (
        None
    )
    bio: Annotated[str, StringConstraints(max_length=5000)] | None = None
    skills: list[Skill] | None = Field(None, max_length=30)
    languages: list[Language] | None = Field(None, max_length=10)
    hourly_rate_minor: int | None = Field(None, ge=0, le=MAX_RATE, description="Minor units")
    currency: Currency | None = Field(None, description="ISO 4217 code")
    timezone: Timezone | None = None
    years_experience: int | None = Field(None, ge=0, le=80)
    links: list[HttpUrl] | None = Field(None, max_length=10)


class MenteeProfileIn(StrictModel):
    goals: Annotated[str, StringConstraints(max_length=2000)] | None = None
    interests: list[Interest] | None = Field(None, max_length=30)


class ProfilePatchIn(StrictModel):
    display_name: DisplayName | None = None
    timezone: Timezone | None = None
    mentor_profile: MentorProfileIn | None = None
    mentee_profile: MenteeProfileIn | None = None


class Money(BaseModel):
    amount_minor: int
    currency: str


class MentorProfileOut(BaseModel):
    headline: str
    bio: str
    skills: list[str]
    languages: list[str]
    hourly_rate: Money | None
    timezone: str | None
    years_experience: int
    links: list[str]

    @classmethod
    def from_domain(cls, m: MentorProfile) -> MentorProfileOut:
        rate = None
        if m.hourly_rate_minor is not None and m.currency:
            rate = Money(amount_minor=m.hourly_rate_minor, currency=m.currency)
        return cls(
            headline=m.headline,
            bio=m.bio,
            skills=m.skills,
            languages=m.languages,
            hourly_rate=rate,
            timezone=m.timezone,
            years_experience=m.years_experience,
            links=[str(x) for x in m.links],
        )


class MenteeProfileOut(BaseModel):
    goals: str
    interests: list[str]

    @classmethod
    def from_domain(cls, m: MenteeProfile) -> MenteeProfileOut:
        return cls(goals=m.goals, interests=m.interests)


class UserOut(BaseModel):
    """The account as its owner (or an admin) sees it."""

    id: str
    email: str
    display_name: str
    timezone: str
    roles: list[AnyRole]
    email_verified: bool
    listed_as_mentor: bool
    created_at: datetime
    mentor_profile: MentorProfileOut | None
    mentee_profile: MenteeProfileOut | None

    @classmethod
    def from_domain(cls, u: User) -> UserOut:
        return cls(
            id=u.id,
            email=u.email,
            display_name=u.display_name,
            timezone=u.timezone,
            roles=sorted(u.roles),
            email_verified=u.email_verified,
            listed_as_mentor=u.listed,
            created_at=u.created_at,
            mentor_profile=MentorProfileOut.from_domain(u.mentor) if u.mentor else None,
            mentee_profile=MenteeProfileOut.from_domain(u.mentee) if u.mentee else None,
        )


class RegisterOut(BaseModel):
    user: UserOut
    message: str


class MentorOut(BaseModel):
    """A mentor as anyone sees them: no email, no private data."""

    id: str
    display_name: str
    headline: str
    bio: str
    skills: list[str]
    languages: list[str]
    hourly_rate: Money
    timezone: str | None
    years_experience: int
    links: list[str]

    @classmethod
    def from_domain(cls, u: User) -> MentorOut:
        m = u.mentor
        assert m is not None and m.hourly_rate_minor is not None and m.currency
        return cls(
            id=u.id,
            display_name=u.display_name,
            headline=m.headline,
            bio=m.bio,
            skills=m.skills,
            languages=m.languages,
            hourly_rate=Money(amount_minor=m.hourly_rate_minor, currency=m.currency),
            timezone=m.timezone or u.timezone,
            years_experience=m.years_experience,
            links=[str(x) for x in m.links],
        )


class MentorPage(BaseModel):
    items: list[MentorOut]
    next_cursor: str | None


class UserPage(BaseModel):
    items: list[UserOut]
    next_cursor: str | None


class JwksOut(BaseModel):
    keys: list[dict[str, str]]


class ExportOut(BaseModel):
    account: dict[str, object]
    mentor_profile: dict[str, object] | None
    mentee_profile: dict[str, object] | None
    linked_identities: list[dict[str, object]]
    exported_at: str
