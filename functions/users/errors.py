"""Errors of the users service, each with a stable problem ``code``."""

from __future__ import annotations

from lwm_core.errors import (
    BadRequestError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RequestValidationError,
    UnauthorizedError,
)


class UsersError(Exception):
    """Base of users-service errors that are not problem responses."""


class MailNotSentError(UsersError):
    """The mail service refused or could not be reached; nothing was sent."""


class EmailTakenError(ConflictError):
    """An account with this email already exists."""

    code = "email_taken"
    title = "Email already registered"


class WeakPasswordError(RequestValidationError):
    """The password does not meet the password policy."""

    code = "weak_password"
    title = "Password does not meet the policy"


class InvalidCredentialsError(UnauthorizedError):
    """Email or password is wrong (never says which)."""

    code = "invalid_credentials"
    title = "Invalid email or password"


class InvalidRefreshTokenError(UnauthorizedError):
    """The refresh token is unknown, expired or revoked."""

    code = "invalid_refresh_token"
    title = "Invalid refresh token"


class RefreshTokenReusedError(UnauthorizedError):
    """A refresh token was used twice: its whole family is now revoked."""

    code = "refresh_token_reused"
    title = "Refresh token reuse detected"


class InvalidOneTimeTokenError(BadRequestError):
    """A verification or reset token is unknown, used or expired."""

    code = "invalid_token"
    title = "Invalid or expired token"


class RoleNotHeldError(ForbiddenError):
    """The user does not hold the role asked for."""

    code = "role_not_held"
    title = "Role not held"


class NotYourAccountError(ForbiddenError):
    """Only the account's owner (or an admin) may do this."""

    code = "not_your_account"
    title = "Not your account"


class UserNotFoundError(NotFoundError):
    """No such user."""

    code = "user_not_found"
    title = "User not found"


class MentorNotFoundError(NotFoundError):
    """No listed mentor with this id."""

    code = "mentor_not_found"
    title = "Mentor not found"


class CurrencyRequiredError(BadRequestError):
    """Price filters and price sorting compare prices within one currency only."""

    code = "currency_required"
    title = "Currency required for price filters"


class UnknownProviderError(NotFoundError):
    """No external identity provider with this name is configured."""

    code = "unknown_provider"
    title = "Unknown identity provider"


class OidcLoginError(BadRequestError):
    """The external sign-in could not be completed."""

    code = "oidc_login_failed"
    title = "External sign-in failed"


class AccountDeletedError(UnauthorizedError):
    """The account was deleted."""

    code = "account_deleted"
    title = "Account deleted"
