"""The platform's error model: every 4xx has a stable machine-readable ``code``.

Services raise subclasses of :class:`ProblemError` (named for what happened);
``lwm_core.web`` renders them as RFC 9457 ``application/problem+json``. Never
branch on message text: branch on the type or its ``code``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

PROBLEM_JSON = "application/problem+json"
PROBLEM_TYPE_BASE = "https://docs.linkwithmentor.dev/problems/"


@dataclass(frozen=True)
class FieldError:
    """One invalid field: where it is, what is wrong, and a stable code."""

    loc: tuple[str | int, ...]
    msg: str
    code: str

    def as_dict(self) -> dict[str, Any]:
        return {"loc": list(self.loc), "msg": self.msg, "code": self.code}


class ProblemError(Exception):
    """Base of every error that reaches a client as problem+json."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or []
        self.headers = headers or {}

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        """The RFC 9457 body for this error."""
        body: dict[str, Any] = {
            "type": PROBLEM_TYPE_BASE + self.code,
            "title": self.title,
            "status": self.status,
            "code": self.code,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        return body


class BadRequestError(ProblemError):
    """The request is malformed (bad JSON, bad cursor, contradictory parameters)."""


class MalformedJsonError(BadRequestError):
    """The body is not valid JSON."""

    code = "malformed_json"
    title = "Malformed JSON body"


class InvalidCursorError(BadRequestError):
    """A pagination cursor was not one this API issued."""

    code = "invalid_cursor"
    title = "Invalid pagination cursor"


class RequestValidationError(ProblemError):
    """One or more fields are missing, unknown or of the wrong type."""

    status = 422
    code = "validation_failed"
    title = "Validation failed"


class UnauthorizedError(ProblemError):
    """No valid credentials were presented."""

    status = 401
    code = "unauthorized"
    title = "Unauthorized"


class ForbiddenError(ProblemError):
    """The caller is known but may not do this."""

    status = 403
    code = "forbidden"
    title = "Forbidden"


class NotFoundError(ProblemError):
    """The resource does not exist (or the caller may not know it does)."""

    status = 404
    code = "not_found"
    title = "Not found"


class MethodNotAllowedError(ProblemError):
    """The path exists but not with this method."""

    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class ConflictError(ProblemError):
    """The request conflicts with the current state."""

    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLargeError(ProblemError):
    """The body is larger than this API accepts."""

    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaTypeError(ProblemError):
    """The body is not JSON."""

    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class RateLimitedError(ProblemError):
    """Too many requests; retry after ``retry_after`` seconds."""

    status = 429
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, detail: str | None = None) -> None:
        self.retry_after = max(1, int(retry_after))
        super().__init__(detail, headers={"Retry-After": str(self.retry_after)})


class DependencyUnavailableError(ProblemError):
    """A dependency (database, AWS service) failed; nothing was changed, retry later."""

    status = 503
    code = "dependency_unavailable"
    title = "Service temporarily unavailable"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, headers={"Retry-After": "2"})
