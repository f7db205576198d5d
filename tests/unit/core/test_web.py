"""The platform's FastAPI edge (``lwm_core.web``): errors, body limits, the caller."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from fastapi import APIRouter, Request
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.types import ASGIApp, Receive, Scope, Send

from lwm_core.errors import (
    PROBLEM_JSON,
    PROBLEM_TYPE_BASE,
    ConflictError,
    ForbiddenError,
    UnauthorizedError,
)
from lwm_core.models import StrictModel
from lwm_core.web import (
    CurrentPrincipal,
    client_ip,
    create_app,
    principal_from_claims,
    require_role,
)

MAX_BODY = 1024


class ItemIn(StrictModel):
    name: str
    quantity: int = 1


router = APIRouter()


@router.post("/items", status_code=201)
def create_item(body: ItemIn) -> dict[str, Any]:
    return {"name": body.name, "quantity": body.quantity}


@router.patch("/items/{item_id}")
def patch_item(item_id: int, body: ItemIn) -> dict[str, Any]:
    return {"id": item_id, "name": body.name}


@router.get("/items/{item_id}")
def get_item(item_id: int) -> dict[str, Any]:
    return {"id": item_id}


@router.get("/boom")
def boom() -> None:
    raise RuntimeError("secret-internal-detail at /srv/app.py line 42")


@router.get("/conflict")
def conflict() -> None:
    raise ConflictError("the slot is taken")


@router.get("/me")
def me(principal: CurrentPrincipal, request: Request) -> dict[str, Any]:
    return {
        "user_id": principal.user_id,
        "roles": sorted(principal.roles),
        "ip": client_ip(request),
    }


_DEPENDENCY_FAILURES: dict[str, Exception] = {
    "operational": OperationalError("SELECT 1", {}, Exception("connection refused")),
    "interface": InterfaceError("SELECT 1", {}, Exception("connection closed")),
    "throttled": ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "Query"
    ),
    "endpoint": EndpointConnectionError(endpoint_url="https://dynamodb.example"),
}


@router.get("/dependency/{kind}")
def dependency(kind: str) -> None:
    raise _DEPENDENCY_FAILURES[kind]


@router.get("/client-error")
def client_error() -> None:
    raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetItem")


def with_event(app: ASGIApp, event: Mapping[str, Any]) -> ASGIApp:
    """``app`` as Mangum calls it: the API Gateway event is in ``scope["aws.event"]``."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        await app({**scope, "aws.event": event}, receive, send)

    return wrapped


@pytest.fixture(scope="module")
def app() -> Any:
    return create_app(title="test", version="0", routers=[router], max_body_bytes=MAX_BODY)


def _client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api.test")


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(app) as test_client:
        yield test_client


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is problem+json with this status and code; returns the body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert {"type", "title", "detail"} <= set(body)
    return body


class TestRequestBodies:
    async def test_a_valid_body_reaches_the_route(self, client: httpx.AsyncClient) -> None:
        # Given a valid JSON body (text is kept as sent: fields trim only when they say so)
        # When it is posted
        response = await client.post("/items", json={"name": "  pen ", "quantity": 2})
        # Then the route answers with exactly what was sent
        assert response.status_code == 201
        assert response.json() == {"name": "  pen ", "quantity": 2}

    async def test_a_json_suffix_media_type_is_json(self, client: httpx.AsyncClient) -> None:
        # Given a body sent as application/merge-patch+json
        # When it is sent
        response = await client.patch(
            "/items/7",
            content=b'{"name": "pen"}',
            headers={"content-type": "application/merge-patch+json"},
        )
        # Then it is accepted as JSON
        assert response.status_code == 200
        assert response.json() == {"id": 7, "name": "pen"}

    async def test_malformed_json_is_a_400(self, client: httpx.AsyncClient) -> None:
        # Given a body that is not JSON
        # When it is posted as JSON
        response = await client.post(
            "/items", content=b'{"name": "pen",', headers={"content-type": "application/json"}
        )
        # Then 400 malformed_json, at the request path
        body = assert_problem(response, 400, "malformed_json")
        assert body["type"] == PROBLEM_TYPE_BASE + "malformed_json"
        assert body["instance"] == "/items"

    async def test_an_unknown_field_is_a_422_naming_it(self, client: httpx.AsyncClient) -> None:
        # Given a body with a field the model does not have
        # When it is posted
        response = await client.post("/items", json={"name": "pen", "colour": "red"})
        # Then 422 with a field error at that field
        body = assert_problem(response, 422, "validation_failed")
        assert body["errors"] == [
            {
                "loc": ["body", "colour"],
                "msg": "Extra inputs are not permitted",
                "code": "extra_forbidden",
            }
        ]

    async def test_missing_and_mistyped_fields_are_a_422_listing_each(
        self, client: httpx.AsyncClient
    ) -> None:
        # Given a body missing a field and with another of the wrong type
        # When it is posted
        response = await client.post("/items", json={"quantity": "many"})
        # Then each problem is a field error
        body = assert_problem(response, 422, "validation_failed")
        found = {(tuple(e["loc"]), e["code"]) for e in body["errors"]}
        assert found == {(("body", "name"), "missing"), (("body", "quantity"), "int_parsing")}

    async def test_a_bad_path_parameter_is_a_422(self, client: httpx.AsyncClient) -> None:
        # Given a path parameter that is not an integer
        # When it is requested
        response = await client.get("/items/seven")
        # Then 422 at that path parameter
        body = assert_problem(response, 422, "validation_failed")
        assert body["errors"][0]["loc"] == ["path", "item_id"]

    async def test_a_body_over_the_limit_is_a_413(self, client: httpx.AsyncClient) -> None:
        # Given a body one byte over the limit
        body = b'{"name": "' + b"x" * (MAX_BODY - 11) + b'"}'
        assert len(body) == MAX_BODY + 1
        # When it is posted
        response = await client.post(
            "/items", content=body, headers={"content-type": "application/json"}
        )
        # Then 413
        assert_problem(response, 413, "payload_too_large")

    async def test_a_body_at_the_limit_is_read(self, client: httpx.AsyncClient) -> None:
        # Given a body exactly at the limit
        body = b'{"name": "' + b"x" * (MAX_BODY - 12) + b'"}'
        assert len(body) == MAX_BODY
        # When it is posted
        response = await client.post(
            "/items", content=body, headers={"content-type": "application/json"}
        )
        # Then it is accepted
        assert response.status_code == 201

    async def test_a_streamed_body_over_the_limit_is_a_413(self, client: httpx.AsyncClient) -> None:
        # Given a body sent in chunks without a Content-Length
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"name": "'
            for _ in range(4):
                yield b"x" * (MAX_BODY // 2)
            yield b'"}'

        # When it is posted
        response = await client.post(
            "/items", content=chunks(), headers={"content-type": "application/json"}
        )
        # Then it is cut off at the limit with a 413
        assert_problem(response, 413, "payload_too_large")

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
    )
    async def test_a_non_json_body_is_a_415(
        self, client: httpx.AsyncClient, content_type: str
    ) -> None:
        # Given a body of another media type
        # When it is posted
        response = await client.post(
            "/items", content=b"name=pen", headers={"content-type": content_type}
        )
        # Then 415
        assert_problem(response, 415, "unsupported_media_type")


class TestErrors:
    async def test_a_problem_error_is_rendered_with_its_status_and_code(
        self, client: httpx.AsyncClient
    ) -> None:
        # Given a route raising a domain error
        # When it is called
        response = await client.get("/conflict")
        # Then its problem is the response
        body = assert_problem(response, 409, "conflict")
        assert body["detail"] == "the slot is taken"
        assert body["instance"] == "/conflict"

    async def test_an_unexpected_exception_is_a_500_without_internals(
        self, client: httpx.AsyncClient
    ) -> None:
        # Given a route with a bug
        # When it is called
        response = await client.get("/boom")
        # Then 500 internal_error, and nothing of the exception leaks
        body = assert_problem(response, 500, "internal_error")
        assert "secret-internal-detail" not in response.text
        assert "Traceback" not in response.text and "app.py" not in response.text
        assert body["detail"] == "something went wrong on our side; it has been logged"

    @pytest.mark.parametrize("kind", sorted(_DEPENDENCY_FAILURES))
    async def test_a_dependency_failure_is_a_retryable_503(
        self, client: httpx.AsyncClient, kind: str
    ) -> None:
        # Given a route whose database or AWS call fails to connect or is throttled
        # When it is called
        response = await client.get(f"/dependency/{kind}")
        # Then 503 dependency_unavailable with Retry-After, no internals
        assert_problem(response, 503, "dependency_unavailable")
        assert response.headers["retry-after"] == "2"
        assert "connection" not in response.json()["detail"]

    async def test_other_aws_errors_are_a_500(self, client: httpx.AsyncClient) -> None:
        # Given a route whose AWS call is denied (a bug, not an outage)
        # When it is called
        # Then 500, not 503
        assert_problem(await client.get("/client-error"), 500, "internal_error")

    async def test_an_unknown_path_is_a_problem_404(self, client: httpx.AsyncClient) -> None:
        # Given no such route
        # When it is requested
        # Then 404 problem+json
        body = assert_problem(await client.get("/nowhere"), 404, "not_found")
        assert body["instance"] == "/nowhere"

    async def test_a_wrong_method_is_a_problem_405(self, client: httpx.AsyncClient) -> None:
        # Given a GET-only route
        # When it is deleted
        # Then 405 problem+json
        assert_problem(await client.delete("/boom"), 405, "method_not_allowed")

    async def test_a_405_says_which_methods_are_allowed(self, client: httpx.AsyncClient) -> None:
        # Given a GET-only route
        # When it is deleted
        response = await client.delete("/boom")
        # Then the Allow header lists GET
        assert "GET" in response.headers.get("allow", "")

    async def test_api_documentation_is_not_served(self, client: httpx.AsyncClient) -> None:
        # Given the app (documentation is published from the declaration, not the function)
        # When its docs and schema are requested
        # Then both are 404
        for path in ("/docs", "/openapi.json"):
            assert (await client.get(path)).status_code == 404


class TestCaller:
    async def test_the_principal_comes_from_the_authorizer_claims(self, app: Any) -> None:
        # Given an event whose JWT authorizer verified a mentee-and-mentor token
        event = {
            "requestContext": {
                "authorizer": {
                    "jwt": {
                        "claims": {
                            "sub": "01HUSER",
                            "scope": "mentee mentor",
                            "email_verified": "true",
                        },
                        "scopes": None,
                    }
                },
                "http": {"sourceIp": "203.0.113.9"},
            }
        }
        # When a protected route is called
        async with _client(with_event(app, event)) as client:
            response = await client.get("/me")
        # Then the route sees that caller and their source IP
        assert response.json() == {
            "user_id": "01HUSER",
            "roles": ["mentee", "mentor"],
            "ip": "203.0.113.9",
        }

    async def test_without_authorizer_claims_a_protected_route_is_a_401(
        self, client: httpx.AsyncClient
    ) -> None:
        # Given a call that did not pass through the JWT authorizer
        # When a protected route is called
        # Then 401
        assert_problem(await client.get("/me"), 401, "unauthorized")

    def test_api_gateway_rendered_claims_are_parsed(self) -> None:
        # Given claims as API Gateway renders them: every value a string
        claims = {
            "sub": "01HUSER",
            "scope": "mentee admin superuser",
            "roles": "[admin mentee]",
            "active_role": "mentee",
            "email_verified": "true",
            "exp": "1800000000",
        }
        # When the caller is built
        principal = principal_from_claims(claims)
        # Then roles come from the scope (unknown ones dropped) and flags are parsed
        assert principal.user_id == "01HUSER"
        assert principal.roles == frozenset({"mentee", "admin"})
        assert principal.is_admin and principal.has_role("mentee")
        assert not principal.has_role("mentor")
        assert principal.active_role == "mentee"
        assert principal.email_verified is True

    @pytest.mark.parametrize(
        ("value", "verified"),
        [
            ("true", True),
            ("True", True),
            (True, True),
            ("false", False),
            (False, False),
            (None, False),
        ],
    )
    def test_email_verified_is_true_only_when_it_says_so(
        self, value: object, verified: bool
    ) -> None:
        # Given an email_verified claim in some form (absent when None)
        claims: dict[str, object] = {"sub": "u1"}
        if value is not None:
            claims["email_verified"] = value
        # When the caller is built
        # Then it is verified only for a true value
        assert principal_from_claims(claims).email_verified is verified

    def test_missing_scope_and_active_role_mean_none(self) -> None:
        # Given claims with a subject only
        # When the caller is built
        principal = principal_from_claims({"sub": "u1"})
        # Then they hold no role and act as none
        assert principal.roles == frozenset()
        assert principal.active_role is None
        assert not principal.is_admin

    @pytest.mark.parametrize("claims", [{}, {"sub": ""}, {"scope": "admin"}])
    def test_claims_without_a_subject_are_a_401(self, claims: dict[str, str]) -> None:
        # Given claims without a subject
        # When the caller is built
        # Then UnauthorizedError
        with pytest.raises(UnauthorizedError):
            principal_from_claims(claims)

    def test_require_role(self) -> None:
        # Given a mentee
        principal = principal_from_claims({"sub": "u1", "scope": "mentee"})
        # When a mentee-or-mentor action and a mentor-only action are checked
        require_role(principal, "mentor", "mentee")
        # Then only the first passes; the second is a 403 naming the role
        with pytest.raises(ForbiddenError, match="mentor role") as caught:
            require_role(principal, "mentor")
        assert caught.value.status == 403


def test_trim_strips_after_the_length_limit_and_keeps_a_minimum() -> None:
    from typing import Annotated

    import pydantic
    from pydantic import AfterValidator, StringConstraints

    from lwm_core.models import StrictModel, trim

    class Named(StrictModel):
        name: Annotated[str, StringConstraints(max_length=5), AfterValidator(trim(1))]

    assert Named(name=" ab ").name == "ab"
    with pytest.raises(pydantic.ValidationError):
        Named(name="   ")  # blank once trimmed
    with pytest.raises(pydantic.ValidationError):
        Named(name="ab    ")  # over the limit as sent, whatever the trim would leave


async def test_unknown_query_parameters_are_a_422() -> None:
    from fastapi import APIRouter, Query

    from lwm_core.web import create_app

    router = APIRouter()

    @router.get("/things")
    def things(limit: int = Query(5, ge=1)) -> dict[str, int]:
        return {"limit": limit}

    app = create_app(title="t", version="1", routers=[router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        ok = await client.get("/things", params={"limit": 3})
        typo = await client.get("/things", params={"limt": 3})
    assert ok.status_code == 200 and ok.json() == {"limit": 3}
    assert typo.status_code == 422 and typo.json()["errors"][0]["loc"] == ["query", "limt"]
