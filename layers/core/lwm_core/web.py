"""FastAPI apps behind API Gateway: one factory for every REST function.

``create_app`` gives each service the same edge behaviour: problem+json for
every error, a JSON body limit (413), 400 for malformed JSON, 422 with
field-level detail for invalid or unknown fields, 415 for non-JSON bodies,
503 when a dependency fails. ``lambda_handler`` wraps the app with Mangum and
Powertools (correlation id = API Gateway request id).
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError as FastApiValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from lwm_core import constants as c
from lwm_core.errors import (
    PROBLEM_JSON,
    DependencyUnavailableError,
    FieldError,
    ForbiddenError,
    MalformedJsonError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    ProblemError,
    RequestValidationError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from lwm_core.observability import logger

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _skip_pydantic_v1_probes() -> None:
    """Stop FastAPI importing ``pydantic.v1`` (about 80 ms of every cold start).

    FastAPI 0.163 imports ``pydantic.v1`` to ask, for each route's types and each
    encoded value, whether it is a Pydantic v1 model. Nothing can be a v1 model
    unless ``pydantic.v1`` has been imported, so until then the answer is False;
    after that, FastAPI's own check runs. Pinned FastAPI; a test guards it.
    """
    try:
        import fastapi.encoders as encoders
        from fastapi._compat import shared
    except ImportError:  # pragma: no cover - a FastAPI without the probe
        return
    if getattr(shared, "_lwm_v1_probes_skipped", False):
        return
    class_check = shared.is_pydantic_v1_model_class
    instance_check = shared.is_pydantic_v1_model_instance

    def is_v1_class(cls: Any) -> bool:
        return "pydantic.v1" in sys.modules and class_check(cls)

    def is_v1_instance(obj: Any) -> bool:
        return "pydantic.v1" in sys.modules and instance_check(obj)

    shared.is_pydantic_v1_model_class = is_v1_class
    shared.is_pydantic_v1_model_instance = is_v1_instance
    encoders.is_pydantic_v1_model_instance = is_v1_instance  # type: ignore[attr-defined]
    shared._lwm_v1_probes_skipped = True  # type: ignore[attr-defined]


_skip_pydantic_v1_probes()

# --- request / response models ---------------------------------------------


class Problem(BaseModel):
    """RFC 9457 problem details, as every error response carries."""

    type: str
    title: str
    status: int
    code: str
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None


_PROBLEM_STATUSES = (400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 503)
# Inline (not a $ref): FastAPI puts a response ``model`` under application/json only,
# and problems are served as application/problem+json.
_PROBLEM_SCHEMA = Problem.model_json_schema()
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {
        "description": "Problem details (RFC 9457)",
        "content": {PROBLEM_JSON: {"schema": _PROBLEM_SCHEMA}},
    }
    for status in _PROBLEM_STATUSES
}


def problem_response(error: ProblemError, instance: str | None = None) -> JSONResponse:
    """Render ``error`` as an ``application/problem+json`` response."""
    return JSONResponse(
        error.to_problem(instance),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )


# --- the caller ----------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    """The signed-in caller, from the claims API Gateway's JWT authorizer verified."""

    user_id: str
    roles: frozenset[str]
    active_role: str | None
    email_verified: bool

    def has_role(self, role: str) -> bool:
        return role in self.roles

    @property
    def is_admin(self) -> bool:
        return c.ROLE_ADMIN in self.roles


def _claims(request: Request) -> Mapping[str, Any] | None:
    event = request.scope.get("aws.event") or {}
    authorizer = (event.get("requestContext") or {}).get("authorizer") or {}
    jwt = authorizer.get("jwt") or {}
    claims = jwt.get("claims")
    return claims if isinstance(claims, Mapping) else None


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    """Build the caller from authorizer claims (API Gateway delivers every value as a string)."""
    sub = claims.get("sub")
    if not sub:
        raise UnauthorizedError("the token has no subject")
    scope = str(claims.get("scope") or "")
    verified = str(claims.get("email_verified", "false")).lower() == "true"
    active = claims.get("active_role")
    return Principal(
        user_id=str(sub),
        roles=frozenset(r for r in scope.split() if r in c.ROLES),
        active_role=str(active) if active else None,
        email_verified=verified,
    )


_bearer = HTTPBearer(auto_error=False, description="Access token from /auth/login")


def current_principal(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of a route that API Gateway's JWT authorizer protects."""
    claims = _claims(request)
    if claims is None:
        # Only reachable when a protected route is called without the authorizer.
        raise UnauthorizedError("sign in first")
    return principal_from_claims(claims)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_role(principal: Principal, *roles: str) -> None:
    """Raise ForbiddenError unless ``principal`` holds one of ``roles``."""
    if not any(principal.has_role(r) for r in roles):
        raise ForbiddenError(f"this needs the {' or '.join(roles)} role")


def client_ip(request: Request) -> str:
    """The caller's source IP as API Gateway saw it."""
    event = request.scope.get("aws.event") or {}
    http = (event.get("requestContext") or {}).get("http") or {}
    return str(http.get("sourceIp") or (request.client.host if request.client else "unknown"))


# --- unknown query parameters ----------------------------------------------------


_QUERY_NAMES: dict[int, frozenset[str]] = {}
# ``openapi_extra`` of a route that another party redirects to (an OAuth callback): its
# query may carry extension parameters the route does not read, so they are not refused.
OPEN_QUERY: dict[str, Any] = {"x-open-query": True}


def _query_names(dependant: Any) -> frozenset[str]:
    """The query parameter names a route's dependency tree declares (cached per route)."""
    names: set[str] = set()
    todo = [dependant]
    while todo:
        current = todo.pop()
        names.update(str(p.alias) for p in current.query_params)
        todo.extend(current.dependencies)
    return frozenset(names)


def reject_unknown_query(request: Request) -> None:
    """Unknown query parameters are a 422, as unknown body fields are (a typo is not ignored)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or (getattr(route, "openapi_extra", None) or {}).get("x-open-query"):
        return
    allowed = _QUERY_NAMES.get(id(route))
    if allowed is None:
        allowed = _QUERY_NAMES[id(route)] = _query_names(dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        raise RequestValidationError(
            "unknown query parameters",
            errors=[
                FieldError(("query", k), "unknown query parameter", "extra_forbidden")
                for k in unknown
            ],
        )


# --- edge middleware ------------------------------------------------------------

_BODY_METHODS = {"POST", "PUT", "PATCH"}


class JsonBodyGuard:
    """ASGI middleware: bodies over ``max_bytes`` get 413, non-JSON bodies 415."""

    def __init__(self, app: ASGIApp, max_bytes: int = c.MAX_JSON_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        too_large = PayloadTooLargeError(f"JSON bodies are limited to {self.max_bytes} bytes")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await problem_response(too_large, scope.get("path"))(scope, receive, send)
            return
        # Read the whole body (Lambda already holds it in memory) and replay it.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await problem_response(too_large, scope.get("path"))(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if (
            body
            and content_type
            and not (content_type == "application/json" or content_type.endswith("+json"))
        ):
            error = UnsupportedMediaTypeError("send the body as application/json")
            await problem_response(error, scope.get("path"))(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# --- error handlers -------------------------------------------------------------


def _is_dependency_failure(exc: BaseException) -> bool:
    """Database and AWS connectivity failures: retryable, nothing was committed."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    bc_exc = sys.modules.get("botocore.exceptions")
    if bc_exc is not None:
        if isinstance(exc, bc_exc.EndpointConnectionError | bc_exc.ConnectTimeoutError):
            return True
        if isinstance(exc, bc_exc.ClientError):
            code = exc.response.get("Error", {}).get("Code", "")
            return code in {
                "ThrottlingException",
                "ProvisionedThroughputExceededException",
                "RequestLimitExceeded",
                "ServiceUnavailable",
                "InternalServerError",
            }
    return False


def _field_errors(exc: FastApiValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        errors.append(
            FieldError(loc=loc, msg=str(err.get("msg", "")), code=str(err.get("type", "")))
        )
    return errors


async def _on_problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc, request.url.path)


async def _on_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FastApiValidationError)
    errors = _field_errors(exc)
    if any(e.code == "json_invalid" for e in errors):
        return problem_response(MalformedJsonError("the body is not valid JSON"), request.url.path)
    return problem_response(RequestValidationError(errors=errors), request.url.path)


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    error: ProblemError
    if exc.status_code == 404:
        error = NotFoundError("no such resource")
    elif exc.status_code == 405:
        error = MethodNotAllowedError(headers=dict(exc.headers or {}))
    else:
        error = ProblemError(str(exc.detail))
    return problem_response(error, request.url.path)


def _unexpected_response(exc: Exception, path: str | None) -> JSONResponse:
    if _is_dependency_failure(exc):
        logger.warning("dependency unavailable", exc_info=exc)
        return problem_response(DependencyUnavailableError(), path)
    logger.exception("unhandled error", exc_info=exc)
    body = {
        "type": "about:blank",
        "title": "Internal error",
        "status": 500,
        "code": "internal_error",
        "detail": "something went wrong on our side; it has been logged",
    }
    return JSONResponse(body, status_code=500, media_type=PROBLEM_JSON)


class UnexpectedErrorGuard:
    """ASGI middleware: an unexpected exception becomes a logged problem response.

    Starlette's own server-error handler re-raises after responding, which
    Mangum would turn into a failed invocation; this guard answers instead.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started or scope["type"] != "http":
                raise
            await _unexpected_response(exc, scope.get("path"))(scope, receive, send)


# --- factory --------------------------------------------------------------------

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def create_app(
    *,
    title: str,
    version: str,
    description: str = "",
    routers: Iterable[Any] = (),
    max_body_bytes: int = c.MAX_JSON_BODY_BYTES,
) -> FastAPI:
    """A FastAPI app with the platform's edge behaviour and error model."""
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        responses=PROBLEM_RESPONSES,
        dependencies=[Depends(reject_unknown_query)],
    )
    for router in routers:
        app.include_router(router)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(FastApiValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_middleware(UnexpectedErrorGuard)
    app.add_middleware(JsonBodyGuard, max_bytes=max_body_bytes)
    return app


def lambda_handler(app: FastAPI) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """The Lambda entry point for ``app``: Mangum plus Powertools logging and metrics."""
    import warnings

    from aws_lambda_powertools.logging import correlation_paths
    from mangum import Mangum
    from mangum.adapter import DEFAULT_TEXT_MIME_TYPES

    from lwm_core.observability import metrics

    # Routes that record no metric are normal; Powertools would warn on each of them.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    asgi = Mangum(app, lifespan="off", text_mime_types=[*DEFAULT_TEXT_MIME_TYPES, PROBLEM_JSON])

    @logger.inject_lambda_context(
        correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True
    )
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return asgi(event, context)

    return handler
