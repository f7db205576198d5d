"""The problem+json error model (``lwm_core.errors``)."""

from __future__ import annotations

import inspect

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.users import errors as users_errors
from lwm_core import errors
from lwm_core.errors import (
    PROBLEM_TYPE_BASE,
    DependencyUnavailableError,
    FieldError,
    NotFoundError,
    ProblemError,
    RateLimitedError,
    RequestValidationError,
)


def _problem_types() -> list[type[ProblemError]]:
    found: list[type[ProblemError]] = []
    for module in (errors, users_errors):
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, ProblemError) and obj not in found:
                found.append(obj)
    return found


def test_problem_body_shape() -> None:
    # Given a not-found error with a detail
    error = NotFoundError("no mentor 42")
    # When it is rendered for a request path
    body = error.to_problem("/mentors/42")
    # Then it is an RFC 9457 body with the stable code
    assert body == {
        "type": PROBLEM_TYPE_BASE + "not_found",
        "title": "Not found",
        "status": 404,
        "code": "not_found",
        "detail": "no mentor 42",
        "instance": "/mentors/42",
    }
    assert error.headers == {}


def test_detail_defaults_to_the_title_and_instance_is_optional() -> None:
    # Given an error raised without a detail
    # When it is rendered without a path
    body = RequestValidationError().to_problem()
    # Then the detail is the title and there is no instance or errors member
    assert body["detail"] == "Validation failed"
    assert body["status"] == 422
    assert "instance" not in body and "errors" not in body


def test_field_errors_are_listed() -> None:
    # Given a validation error with two field errors
    error = RequestValidationError(
        errors=[
            FieldError(("body", "email"), "not an email", "value_error"),
            FieldError(("query", "limit", 0), "too big", "less_than_equal"),
        ]
    )
    # When it is rendered
    # Then each field error is a {loc, msg, code} with a list location
    assert error.to_problem()["errors"] == [
        {"loc": ["body", "email"], "msg": "not an email", "code": "value_error"},
        {"loc": ["query", "limit", 0], "msg": "too big", "code": "less_than_equal"},
    ]


@pytest.mark.parametrize(("retry_after", "header"), [(30, "30"), (0, "1"), (-5, "1"), (2.9, "2")])
def test_rate_limited_carries_retry_after(retry_after: float, header: str) -> None:
    # Given a rate-limited error
    error = RateLimitedError(retry_after)  # type: ignore[arg-type]
    # When it is rendered
    # Then it is a 429 with a whole, positive Retry-After
    assert error.status == 429
    assert error.code == "rate_limited"
    assert error.headers == {"Retry-After": header}
    assert error.retry_after == int(header)


@given(seconds=st.integers(min_value=-(10**6), max_value=10**6))
def test_retry_after_is_never_below_one_second(seconds: int) -> None:
    # Given any retry delay
    # When a rate-limited error is built
    error = RateLimitedError(seconds)
    # Then Retry-After is at least 1 and otherwise the delay
    assert error.retry_after == max(1, seconds)
    assert error.headers["Retry-After"] == str(max(1, seconds))


def test_dependency_unavailable_asks_to_retry() -> None:
    # Given a dependency failure
    error = DependencyUnavailableError()
    # Then it is a retryable 503
    assert (error.status, error.code) == (503, "dependency_unavailable")
    assert error.headers == {"Retry-After": "2"}


def test_every_problem_type_has_its_own_code_a_title_and_a_docstring() -> None:
    # Given every problem type of the platform and the users service
    types = _problem_types()
    # When their own codes are collected
    own = [t for t in types if "code" in vars(t)]
    codes = [t.code for t in own]
    # Then codes are unique snake_case, and every type says what happened
    assert len(codes) == len(set(codes)), codes
    for t in types:
        assert t.code.replace("_", "").isalpha() and t.code.islower(), t
        assert 400 <= t.status <= 599, t
        assert t.title and (t.__doc__ or "").strip(), t
        assert t.__name__.endswith("Error"), t
