"""Business rules of the users service: accounts, tokens, roles, profiles, discovery.

Pure and typed: every function receives its collaborators (ports from
``domain``) and values, never reads the environment or imports boto3/SQLAlchemy.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import available_timezones

from functions.users import errors
from functions.users.domain import (
    Identity,
    Mailer,
    MenteeProfile,
    MentorProfile,
    MentorQuery,
    MentorSort,
    OneTimeToken,
    PasswordHasher,
    RefreshRecord,
    Signer,
    TokenStore,
    Uow,
    User,
)
from lwm_core import constants as c
from lwm_core.errors import (
    BadRequestError,
    DependencyUnavailableError,
    FieldError,
    ForbiddenError,
    RequestValidationError,
)
from lwm_core.ids import new_id
from lwm_core.observability import logger
from lwm_core.pagination import Page

PURPOSE_VERIFY = "verify-email"
PURPOSE_RESET = "password-reset"

MIN_PASSWORD = 10
MAX_PASSWORD = 128
_COMMON_PASSWORDS = frozenset(
    {
        "password123",
        "password1234",
        "1234567890",
        "qwertyuiop",
        "iloveyou123",
        "letmein1234",
        "welcome123",
        "administrator",
        "passw0rd123",
        "abc1234567",
        "qwerty12345",
        "1q2w3e4r5t",
        "0987654321",
        "11111111111",
        "mentorship1",
    }
)


@dataclass(frozen=True)
class Config:
    """Values the users logic needs from settings."""

    issuer: str
    audience: str
    base_url: str
    access_ttl_s: int = c.ACCESS_TOKEN_TTL_S
    refresh_ttl_s: int = c.REFRESH_TOKEN_TTL_S
    verify_ttl_s: int = 48 * 3600
    reset_ttl_s: int = 3600


@dataclass
class Deps:
    """Collaborators of the users logic, built once per sandbox (fakes in unit tests)."""

    config: Config
    uow: Callable[[], AbstractContextManager[Uow]]
    tokens: TokenStore
    signer: Signer
    mailer: Mailer
    hasher: PasswordHasher
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


@dataclass(frozen=True)
class TokenPair:
    """What a successful sign-in returns."""

    access_token: str
    refresh_token: str
    expires_in: int
    active_role: str
    token_type: str = "Bearer"  # noqa: S105 (the OAuth token type, not a secret)


# --- helpers ------------------------------------------------------------------------


def normalize_email(email: str) -> str:
    """Emails compare case-insensitively and without surrounding space."""
    return email.strip().lower()


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _new_secret() -> str:
    return secrets.token_urlsafe(32)


def _epoch(dt: datetime) -> int:
    return int(dt.timestamp())


def check_password_policy(password: str, email: str) -> None:
    """10 to 128 characters, not a common password, not containing the email's name.

    Raises:
        WeakPasswordError: with a field error saying what is wrong.
    """
    problem = None
    local = normalize_email(email).split("@")[0]
    if len(password) < MIN_PASSWORD:
        problem = f"use at least {MIN_PASSWORD} characters"
    elif len(password) > MAX_PASSWORD:
        problem = f"use at most {MAX_PASSWORD} characters"
    elif password.lower() in _COMMON_PASSWORDS or len(set(password)) < 4:
        problem = "this password is too common or too simple"
    elif len(local) >= 4 and local in password.lower():
        problem = "the password must not contain your email address"
    if problem:
        raise errors.WeakPasswordError(
            problem, errors=[FieldError(("body", "password"), problem, "weak_password")]
        )


def check_timezone(tz: str) -> str:
    """An IANA time zone name, or a 422."""
    if tz not in _timezones():
        raise RequestValidationError(
            "unknown time zone",
            errors=[FieldError(("body", "timezone"), "not an IANA time zone", "invalid_timezone")],
        )
    return tz


_TZ_CACHE: set[str] = set()


def _timezones() -> set[str]:
    if not _TZ_CACHE:
        _TZ_CACHE.update(available_timezones())
    return _TZ_CACHE


def default_active_role(user: User) -> str:
    """The role a fresh sign-in acts as: mentee when held, else mentor, else admin."""
    for r in (c.ROLE_MENTEE, c.ROLE_MENTOR, c.ROLE_ADMIN):
        if r in user.roles:
            return r
    return c.ROLE_MENTEE


# --- registration and email verification -------------------------------------------


def register(
    deps: Deps, *, email: str, password: str, display_name: str, timezone: str, roles: set[str]
) -> User:
    """Create an account and email a verification link.

    Raises:
        EmailTakenError: an account already uses this email.
        WeakPasswordError: the password fails the policy.
    """
    email = normalize_email(email)
    # Admin is granted by an operator only; no role at all means a mentee.
    roles = (roles & set(c.SELF_SERVICE_ROLES)) or {c.ROLE_MENTEE}
    check_password_policy(password, email)
    check_timezone(timezone)
    now = deps.clock()
    user = User(
        id=new_id(),
        email=email,
        display_name=display_name,
        timezone=timezone,
        roles=set(roles),
        created_at=now,
        password_hash=deps.hasher.hash(password),
        mentee=MenteeProfile() if c.ROLE_MENTEE in roles else None,
        mentor=MentorProfile(timezone=timezone) if c.ROLE_MENTOR in roles else None,
    )
    with deps.uow() as uow:
        if uow.users.get_by_email(email) is not None:
            raise errors.EmailTakenError("an account with this email already exists")
        uow.users.add(user)
        uow.commit()
    # The account is accepted once committed: a mail outage must not lose it
    # (the person asks for a new link with POST /auth/verify-email/resend).
    send_verification(deps, user)
    return user


def send_verification(deps: Deps, user: User) -> bool:
    """Email ``user`` a fresh verification link; False when the mail could not be sent."""
    token = _new_secret()
    expires = _epoch(deps.clock()) + deps.config.verify_ttl_s
    deps.tokens.put_one_time(OneTimeToken(_hash_token(token), PURPOSE_VERIFY, user.id, expires))
    link = f"{deps.config.base_url}/auth/verify-email?token={token}"
    try:
        _send_verification_mail(deps, user, link)
    except errors.MailNotSentError:
        logger.warning("verification mail not sent", extra={"user_id": user.id})
        return False
    return True


def _send_verification_mail(deps: Deps, user: User, link: str) -> None:
    deps.mailer.send_mail(
        user.email,
        "Confirm your LinkWithMentor email",
        f"Hi {user.display_name},\n\nConfirm your email address by opening this link:\n{link}\n\n"
        f"It expires in {deps.config.verify_ttl_s // 3600} hours. If you did not sign up, "
        "ignore this message.\n",
    )


def verify_email(deps: Deps, token: str) -> User:
    """Mark the token's account verified.

    Raises:
        InvalidOneTimeTokenError: unknown, used or expired token.
    """
    now = deps.clock()
    record = deps.tokens.consume_one_time(_hash_token(token), PURPOSE_VERIFY, _epoch(now))
    if record is None:
        raise errors.InvalidOneTimeTokenError("this verification link is invalid or expired")
    with deps.uow() as uow:
        user = _live_user(uow, record.user_id)
        if user.email_verified_at is None:
            user.email_verified_at = now
            _touch_listing(user, now)
            uow.users.save(user)
            uow.commit()
    return user


# --- sign-in, tokens ------------------------------------------------------------------


def authenticate(deps: Deps, email: str, password: str) -> User:
    """The account whose email and password match.

    Raises:
        InvalidCredentialsError: either is wrong (time spent is the same either way).
    """
    with deps.uow() as uow:
        user = uow.users.get_by_email(normalize_email(email))
        if user is None or user.password_hash is None or user.deleted_at is not None:
            deps.hasher.hash(password)  # spend the same time as a real check
            raise errors.InvalidCredentialsError("email or password is wrong")
        if not deps.hasher.verify(user.password_hash, password):
            raise errors.InvalidCredentialsError("email or password is wrong")
        if deps.hasher.needs_rehash(user.password_hash):
            user.password_hash = deps.hasher.hash(password)
            uow.users.save(user)
            uow.commit()
    return user


def issue_tokens(
    deps: Deps, user: User, active_role: str | None = None, family_id: str | None = None
) -> TokenPair:
    """A new access token and a refresh token (in a new family unless one is given)."""
    role = active_role or default_active_role(user)
    if role not in user.roles:
        raise errors.RoleNotHeldError(f"you do not hold the {role} role")
    now = _epoch(deps.clock())
    roles = sorted(user.roles)
    claims: dict[str, object] = {
        "iss": deps.config.issuer,
        "aud": deps.config.audience,
        "sub": user.id,
        "iat": now,
        "nbf": now,
        "exp": now + deps.config.access_ttl_s,
        "jti": new_id(),
        "token_use": "access",
        "roles": roles,
        "scope": " ".join(roles),
        "active_role": role,
        "email_verified": user.email_verified,
    }
    access = deps.signer.sign(claims)
    refresh = _new_secret()
    record = RefreshRecord(
        token_hash=_hash_token(refresh),
        family_id=family_id or new_id(),
        user_id=user.id,
        expires_at=now + deps.config.refresh_ttl_s,
        used=False,
    )
    deps.tokens.put_refresh(record, created_at=now)
    return TokenPair(access, f"{role}.{refresh}", deps.config.access_ttl_s, role)


def _split_refresh(token: str) -> tuple[str, str]:
    role, _, secret = token.partition(".")
    if not secret or role not in c.ROLES:
        raise errors.InvalidRefreshTokenError("this refresh token is not valid")
    return role, secret


def refresh(deps: Deps, token: str) -> TokenPair:
    """Rotate a refresh token: the old one is spent, a new pair is issued.

    Raises:
        InvalidRefreshTokenError: unknown, expired or revoked.
        RefreshTokenReusedError: already spent; the whole family is revoked.
    """
    role, secret = _split_refresh(token)
    token_hash = _hash_token(secret)
    record = deps.tokens.get_refresh(token_hash)
    now = _epoch(deps.clock())
    if record is None or record.expires_at <= now:
        raise errors.InvalidRefreshTokenError("this refresh token is not valid")
    if deps.tokens.family_revoked(record.family_id):
        raise errors.InvalidRefreshTokenError("this session was signed out")
    if record.used or not deps.tokens.mark_refresh_used(token_hash):
        deps.tokens.revoke_family(record.family_id)
        raise errors.RefreshTokenReusedError(
            "this refresh token was already used; the session is revoked, sign in again"
        )
    with deps.uow() as uow:
        user = _live_user(uow, record.user_id)
    active = role if role in user.roles else default_active_role(user)
    return issue_tokens(deps, user, active, record.family_id)


def logout(deps: Deps, token: str) -> None:
    """Revoke the refresh token's family (unknown tokens are ignored: logout is idempotent)."""
    try:
        _, secret = _split_refresh(token)
    except errors.InvalidRefreshTokenError:
        return
    record = deps.tokens.get_refresh(_hash_token(secret))
    if record is not None:
        deps.tokens.revoke_family(record.family_id)


def switch_role(deps: Deps, user_id: str, role: str) -> TokenPair:
    """A new token pair acting as ``role`` (which the user must hold)."""
    with deps.uow() as uow:
        user = _live_user(uow, user_id)
    if role not in user.roles:
        raise errors.RoleNotHeldError(f"you do not hold the {role} role; add it first")
    return issue_tokens(deps, user, role)


# --- password reset -----------------------------------------------------------------


def forgot_password(deps: Deps, email: str) -> None:
    """Email a reset link if the account exists; says nothing either way."""
    with deps.uow() as uow:
        user = uow.users.get_by_email(normalize_email(email))
    if user is None or user.deleted_at is not None:
        return
    token = _new_secret()
    expires = _epoch(deps.clock()) + deps.config.reset_ttl_s
    deps.tokens.put_one_time(OneTimeToken(_hash_token(token), PURPOSE_RESET, user.id, expires))
    try:
        deps.mailer.send_mail(
            user.email,
            "Reset your LinkWithMentor password",
            f"Hi {user.display_name},\n\nSomeone asked to reset your password. Use this token "
            f"in the app, or send it with your new password to POST "
            f"{deps.config.base_url}/auth/password/reset, within the hour:\n\n"
            f"    token={token}\n\n"
            "If it was not you, ignore this message; your password is unchanged.\n",
        )
    except errors.MailNotSentError as e:
        raise DependencyUnavailableError("the reset email could not be sent; try again") from e


def reset_password(deps: Deps, token: str, new_password: str) -> None:
    """Set a new password from an emailed token and sign out every session."""
    record = deps.tokens.consume_one_time(_hash_token(token), PURPOSE_RESET, _epoch(deps.clock()))
    if record is None:
        raise errors.InvalidOneTimeTokenError("this reset token is invalid or expired")
    with deps.uow() as uow:
        user = _live_user(uow, record.user_id)
        try:
            check_password_policy(new_password, user.email)
        except errors.WeakPasswordError:
            deps.tokens.put_one_time(record)  # a refused password must not spend the token
            raise
        user.password_hash = deps.hasher.hash(new_password)
        if user.email_verified_at is None:
            user.email_verified_at = deps.clock()  # the emailed token proves the address
            _touch_listing(user, user.email_verified_at)
        uow.users.save(user)
        uow.commit()
    deps.tokens.revoke_user(user.id)


# --- roles and profiles ------------------------------------------------------------


def _live_user(uow: Uow, user_id: str) -> User:
    user = uow.users.get(user_id)
    if user is None:
        raise errors.UserNotFoundError("no such user")
    if user.deleted_at is not None:
        raise errors.AccountDeletedError("this account was deleted")
    return user


def get_user(deps: Deps, user_id: str) -> User:
    """A live account by id."""
    with deps.uow() as uow:
        return _live_user(uow, user_id)


def ensure_can_manage(actor_id: str, actor_is_admin: bool, target_id: str) -> None:
    """Only the account's owner or an admin may read or change it."""
    if actor_id != target_id and not actor_is_admin:
        raise errors.NotYourAccountError("you can only manage your own account")


def add_role(deps: Deps, user_id: str, role: str) -> User:
    """Give the user a self-service role (mentee or mentor); idempotent."""
    if role not in c.SELF_SERVICE_ROLES:
        raise ForbiddenError(f"the {role} role cannot be self-assigned")
    with deps.uow() as uow:
        user = _live_user(uow, user_id)
        if role not in user.roles:
            user.roles.add(role)
            if role == c.ROLE_MENTOR and user.mentor is None:
                user.mentor = MentorProfile(timezone=user.timezone)
            if role == c.ROLE_MENTEE and user.mentee is None:
                user.mentee = MenteeProfile()
            _touch_listing(user, deps.clock())
            uow.users.save(user)
            uow.commit()
    return user


def grant_admin(uow_factory: Callable[[], AbstractContextManager[Uow]], email: str) -> User:
    """Operator-only: make the account an admin (used by the operator CLI)."""
    with uow_factory() as uow:
        user = uow.users.get_by_email(normalize_email(email))
        if user is None or user.deleted_at is not None:
            raise errors.UserNotFoundError(f"no account for {email}")
        user.roles.add(c.ROLE_ADMIN)
        uow.users.save(user)
        uow.commit()
    return user


@dataclass(frozen=True)
class ProfilePatch:
    """A partial update of an account; ``None`` means unchanged."""

    display_name: str | None = None
    timezone: str | None = None
    mentor: dict[str, Any] | None = None
    mentee: dict[str, Any] | None = None


def update_profile(deps: Deps, user_id: str, patch: ProfilePatch) -> User:
    """Apply ``patch``; mentor/mentee sections need the matching role."""
    with deps.uow() as uow:
        user = _live_user(uow, user_id)
        if patch.display_name is not None:
            user.display_name = patch.display_name
        if patch.timezone is not None:
            user.timezone = check_timezone(patch.timezone)
        if patch.mentor is not None:
            if c.ROLE_MENTOR not in user.roles:
                raise errors.RoleNotHeldError("add the mentor role before editing a mentor profile")
            if patch.mentor.get("timezone"):
                check_timezone(str(patch.mentor["timezone"]))
            user.mentor = _merge(user.mentor or MentorProfile(), patch.mentor)
        if patch.mentee is not None:
            if c.ROLE_MENTEE not in user.roles:
                raise errors.RoleNotHeldError("add the mentee role before editing a mentee profile")
            user.mentee = _merge(user.mentee or MenteeProfile(), patch.mentee)
        _touch_listing(user, deps.clock())
        uow.users.save(user)
        uow.commit()
    return user


_P = TypeVar("_P", MentorProfile, MenteeProfile)


def _merge(profile: _P, changes: dict[str, Any]) -> _P:
    """``profile`` with ``changes`` applied; a null resets that field (JSON merge patch)."""
    defaults: dict[str, Any] = {}
    for f in fields(profile):
        if f.name in changes and changes[f.name] is None:
            factory = f.default_factory
            defaults[f.name] = factory() if factory is not MISSING else f.default
    return replace(profile, **{**changes, **defaults})


def _touch_listing(user: User, now: datetime) -> None:
    """Stamp when a mentor first becomes listed (the 'newest' order)."""
    if user.mentor is not None:
        if user.listed and user.mentor.listed_at is None:
            user.mentor.listed_at = now
        elif not user.listed:
            user.mentor.listed_at = None


def list_users(deps: Deps, limit: int, cursor: str | None) -> Page[User]:
    """Every account, newest id first (admin)."""
    with deps.uow() as uow:
        return uow.users.list_users(limit, cursor)


# --- discovery ------------------------------------------------------------------------

_PRICE_SORTS = {MentorSort.PRICE_ASC, MentorSort.PRICE_DESC}


def search_mentors(deps: Deps, query: MentorQuery) -> Page[User]:
    """Listed mentors matching ``query``; prices are compared within one currency only.

    Raises:
        CurrencyRequiredError: a price filter or price order without ``currency``.
    """
    if query.currency is None and (
        query.min_price is not None or query.max_price is not None or query.sort in _PRICE_SORTS
    ):
        raise errors.CurrencyRequiredError(
            "prices are compared within one currency: add currency=XXX to filter or sort by price"
        )
    low, high = query.min_price, query.max_price
    if low is not None and high is not None and low > high:
        raise BadRequestError("min_price is greater than max_price")
    with deps.uow() as uow:
        return uow.users.search_mentors(query)


def get_mentor(deps: Deps, mentor_id: str) -> User:
    """A listed mentor's public profile."""
    with deps.uow() as uow:
        user = uow.users.get(mentor_id)
    if user is None or not user.listed:
        raise errors.MentorNotFoundError("no listed mentor with this id")
    return user


# --- external sign-in -----------------------------------------------------------------


@dataclass(frozen=True)
class ExternalIdentity:
    """What an external OpenID provider asserted about the person."""

    provider: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None


def sign_in_external(deps: Deps, ext: ExternalIdentity, default_timezone: str = "UTC") -> User:
    """The account linked to ``ext``: an existing link, else the account with the same
    verified email (linked now), else a new account."""
    now = deps.clock()
    unproven = False
    with deps.uow() as uow:
        identity = uow.users.get_identity(ext.provider, ext.subject)
        if identity is not None:
            user = _live_user(uow, identity.user_id)
            return user
        user_or_none = None
        if ext.email and ext.email_verified:
            user_or_none = uow.users.get_by_email(normalize_email(ext.email))
            if user_or_none is not None and user_or_none.deleted_at is not None:
                user_or_none = None
        if user_or_none is None:
            if not ext.email or not ext.email_verified:
                raise errors.OidcLoginError("the provider did not confirm an email address")
            user = User(
                id=new_id(),
                email=normalize_email(ext.email),
                display_name=(ext.name or ext.email.split("@")[0])[:80],
                timezone=default_timezone,
                roles={c.ROLE_MENTEE},
                created_at=now,
                email_verified_at=now,
                mentee=MenteeProfile(),
            )
            uow.users.add(user)
        else:
            user = user_or_none
            if user.email_verified_at is None:
                # Whoever registered this address never proved they own it; the provider
                # just did for this person, so the unproven password must not open it.
                unproven = True
                user.email_verified_at = now
                user.password_hash = None
                _touch_listing(user, now)
                uow.users.save(user)
        uow.users.add_identity(Identity(ext.provider, ext.subject, user.id, ext.email))
        uow.commit()
    if unproven:
        deps.tokens.revoke_user(user.id)
    return user


# --- GDPR -------------------------------------------------------------------------------


def delete_account(deps: Deps, user_id: str) -> None:
    """Erase personal data: the account row is anonymised (ids stay valid for
    records other services must keep, such as payments), links and sessions go."""
    now = deps.clock()
    with deps.uow() as uow:
        user = _live_user(uow, user_id)
        user.email = f"deleted-{user.id}@deleted.invalid"
        user.display_name = "Deleted user"
        user.password_hash = None
        user.deleted_at = now
        user.mentor = None
        user.mentee = None
        user.roles = set()
        uow.users.delete_identities(user.id)
        uow.users.save(user)
        uow.commit()
    deps.tokens.revoke_user(user_id)


def export_account(deps: Deps, user_id: str) -> dict[str, Any]:
    """Everything the platform holds about the user, as JSON-ready data."""
    with deps.uow() as uow:
        user = _live_user(uow, user_id)
        identities = list(uow.users.identities_of(user_id))
    return {
        "account": {
            "id": user.id,
            "email": user.email,
            "display_name": user.display_name,
            "timezone": user.timezone,
            "roles": sorted(user.roles),
            "email_verified": user.email_verified,
            "created_at": user.created_at.isoformat(),
        },
        "mentor_profile": _asdict(user.mentor),
        "mentee_profile": _asdict(user.mentee),
        "linked_identities": [
            {"provider": i.provider, "subject": i.subject, "email": i.email} for i in identities
        ],
        "exported_at": deps.clock().isoformat(),
    }


def _asdict(obj: MentorProfile | MenteeProfile | None) -> dict[str, Any] | None:
    if obj is None:
        return None
    out: dict[str, Any] = {}
    for key, value in vars(obj).items():
        out[key] = value.isoformat() if isinstance(value, datetime) else value
    return out
