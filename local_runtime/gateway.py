"""The local API Gateway HTTP API: declared routes, payload format 2.0, the JWT authorizer.

An ASGI app (served by uvicorn) that answers exactly as an HTTP API with
Lambda proxy integrations does: only the routes of ``Platform.routes()``
exist (``{name}`` and greedy ``{name+}`` path variables, the most specific
route wins, anything else is ``404 {"message":"Not Found"}``); each request
becomes the version 2.0 event; the function's result becomes the response,
inferred as AWS infers it when the function returns no ``statusCode``.

One local addition, outside the API: ``GET /`` and ``GET /web/...``, which no
route declares, serve the web client (``local_runtime.webclient``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from blueprint.model import Auth, Function, Route
from local_runtime import config
from local_runtime.asgi import BodyTooLargeError, Headers, header, read_body, respond
from local_runtime.authorizer import DeniedError, Grant, JwtAuthorizer
from local_runtime.webclient import WebClient
from local_runtime.workers import InvokeRequest, LambdaRuntime, RuntimeStoppedError, new_trace_id

log = logging.getLogger("local_runtime.gateway")

API_ID = "lwmlocal"
_JSON = (b"content-type", b"application/json")
# Hop-by-hop and framing headers of a function's response: the gateway sets its own.
_DROPPED_RESPONSE_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Bodies with these media types (and a UTF-8 or no charset) reach the function as text;
# any other body, or one without a Content-Type, is base64-encoded, as HTTP APIs do.
_TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/javascript", "application/graphql"}
)

SegmentKind = Literal[0, 1, 2]  # static, {param}, {greedy+}: lower is more specific
_STATIC: SegmentKind = 0
_PARAM: SegmentKind = 1
_GREEDY: SegmentKind = 2


@dataclass(frozen=True)
class RouteMatch:
    """A request's route, the function serving it and the path parameters."""

    route: Route
    fn: Function
    path_parameters: dict[str, str]


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    fn: Function
    segments: tuple[tuple[SegmentKind, str], ...]

    @property
    def specificity(self) -> tuple[SegmentKind, ...]:
        return tuple(kind for kind, _ in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for i, (kind, text) in enumerate(self.segments):
            if kind == _GREEDY:
                rest = parts[i:]
                if not rest or not all(rest):
                    return None
                params[text] = "/".join(rest)
                return params
            if i >= len(parts) or not parts[i]:
                return None
            if kind == _STATIC:
                if parts[i] != text:
                    return None
            else:
                params[text] = parts[i]
        return params if len(parts) == len(self.segments) else None


def _compile(route: Route, fn: Function) -> _CompiledRoute:
    segments: list[tuple[SegmentKind, str]] = []
    for part in route.path.strip("/").split("/"):
        if part.startswith("{") and part.endswith("+}"):
            segments.append((_GREEDY, part[1:-2]))
        elif part.startswith("{"):
            segments.append((_PARAM, part[1:-1]))
        else:
            segments.append((_STATIC, part))
    return _CompiledRoute(route, fn, tuple(segments))


class RouteTable:
    """The declared routes, matched as HTTP APIs match them (most specific first)."""

    def __init__(self, routes: Iterable[tuple[Route, Function]]) -> None:
        self._static: dict[tuple[str, str], RouteMatch] = {}
        self._dynamic: dict[str, list[_CompiledRoute]] = {}
        for route, fn in routes:
            compiled = _compile(route, fn)
            if all(kind == _STATIC for kind in compiled.specificity):
                self._static[(route.method, route.path)] = RouteMatch(route, fn, {})
            else:
                self._dynamic.setdefault(route.method, []).append(compiled)
        for candidates in self._dynamic.values():
            candidates.sort(key=lambda c: c.specificity)

    def match(self, method: str, path: str) -> RouteMatch | None:
        """The route serving ``method path`` (path already percent-decoded), or None."""
        static = self._static.get((method, path))
        if static is not None:
            return static
        parts = path[1:].split("/") if path.startswith("/") else []
        for candidate in self._dynamic.get(method, ()):
            params = candidate.match(parts)
            if params is not None:
                return RouteMatch(candidate.route, candidate.fn, params)
        return None


def new_request_id() -> str:
    """An id shaped like API Gateway's (``apigw-requestid``), e.g. ``JKJaXmPLvHcESHA=``."""
    return base64.b64encode(os.urandom(11)).decode()


def _request_time(epoch_s: float) -> str:
    t = time.gmtime(epoch_s)
    return (
        f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{time.strftime('%H:%M:%S', t)} +0000"
    )


def is_text(content_type: str | None) -> bool:
    """Whether an HTTP API passes a body of this type as text (else base64)."""
    if not content_type:
        return False
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    if not (media.startswith("text/") or media in _TEXT_TYPES):
        return False
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and value.strip().strip('"').lower() != "utf-8":
            return False
    return True


def _as_text(body: bytes) -> str | None:
    try:
        return body.decode()
    except UnicodeDecodeError:
        return None


def build_event(
    scope: Scope,
    match: RouteMatch,
    body: bytes,
    request_id: str,
    grant: Grant | None,
) -> dict[str, Any]:
    """The API Gateway payload format 2.0 event for this request."""
    now = time.time()
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        elif name in headers:
            headers[name] = f"{headers[name]},{value}"
        else:
            headers[name] = value
    client_host = scope["client"][0] if scope.get("client") else config.HOST
    server_port = scope["server"][1] if scope.get("server") else 0
    headers.setdefault("x-forwarded-for", client_host)
    headers.setdefault("x-forwarded-port", str(server_port))
    headers.setdefault("x-forwarded-proto", scope.get("scheme", "http"))
    headers.setdefault("x-amzn-trace-id", new_trace_id().split(";")[0])

    raw_path = scope.get("raw_path") or scope["path"].encode()
    raw_path_text = raw_path.decode("latin-1")
    raw_query = scope.get("query_string", b"").decode("latin-1")
    domain = headers.get("host", f"{config.HOST}:{server_port}")
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": match.route.key,
        "rawPath": raw_path_text,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if raw_query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    if match.path_parameters:
        event["pathParameters"] = match.path_parameters
    context: dict[str, Any] = {
        "accountId": config.ACCOUNT_ID,
        "apiId": API_ID,
        "domainName": domain,
        "domainPrefix": domain.split(".")[0],
        "http": {
            "method": scope["method"],
            "path": raw_path_text,
            "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
            "sourceIp": client_host,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": match.route.key,
        "stage": "$default",
        "time": _request_time(now),
        "timeEpoch": int(now * 1000),
    }
    if grant is not None:
        context["authorizer"] = {"jwt": {"claims": grant.claims, "scopes": grant.scopes}}
    event["requestContext"] = context
    if body:
        text = _as_text(body) if is_text(headers.get("content-type")) else None
        # A body that is not text (or claims a text type but is not UTF-8) arrives base64'd.
        event["body"] = text if text is not None else base64.b64encode(body).decode()
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


class MalformedResponseError(ValueError):
    """The function's result is not a response an HTTP API can send."""


def to_http(payload: bytes) -> tuple[int, Headers, bytes]:
    """The HTTP response for a function's result (payload format 2.0)."""
    try:
        result = json.loads(payload)
    except ValueError as e:
        raise MalformedResponseError("the result is not JSON") from e
    if not isinstance(result, dict) or "statusCode" not in result:
        # No statusCode: AWS infers 200, JSON, and the result itself as the body.
        body = result if isinstance(result, str) else json.dumps(result)
        return 200, [_JSON], body.encode()
    status = result["statusCode"]
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise MalformedResponseError(f"statusCode {status!r} is not an HTTP status")
    headers: Headers = []
    for name, value in (result.get("headers") or {}).items():
        _add_header(headers, name, value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values or ():
            _add_header(headers, name, value)
    for cookie in result.get("cookies") or ():
        headers.append((b"set-cookie", str(cookie).encode()))
    text = result.get("body")
    if text is None:
        return status, headers, b""
    if not isinstance(text, str):
        raise MalformedResponseError("body is not a string")
    if result.get("isBase64Encoded"):
        try:
            return status, headers, base64.b64decode(text, validate=True)
        except ValueError as e:
            raise MalformedResponseError("body is not valid base64") from e
    return status, headers, text.encode()


def _add_header(headers: Headers, name: object, value: object) -> None:
    key = str(name).lower()
    if key not in _DROPPED_RESPONSE_HEADERS:
        headers.append((key.encode(), str(value).encode()))


class HttpApiGateway:
    """The ASGI app of the local HTTP API."""

    def __init__(
        self,
        routes: RouteTable,
        runtime: LambdaRuntime,
        authorizer: JwtAuthorizer,
        *,
        integration_timeout_s: float = config.HTTP_API_INTEGRATION_TIMEOUT_S,
        max_payload_bytes: int = config.HTTP_API_MAX_PAYLOAD_BYTES,
        web_client: WebClient | None = None,
    ) -> None:
        self._routes = routes
        self._runtime = runtime
        self._authorizer = authorizer
        self.integration_timeout_s = integration_timeout_s
        self._max_payload = max_payload_bytes
        # The page at / (its websocket_url may be set once the WebSocket API listens).
        self.web_client = web_client or WebClient()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started = time.perf_counter()
        request_id = new_request_id()
        status = await self._handle(scope, receive, send, request_id)
        log.info(
            "%s %s %d %.1fms %s",
            scope["method"],
            scope["path"],
            status,
            (time.perf_counter() - started) * 1000,
            request_id,
        )

    async def _handle(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        reply_headers: Headers = [(b"apigw-requestid", request_id.encode())]

        async def message(status: int, text: str, extra: Headers | None = None) -> int:
            body = json.dumps({"message": text}, separators=(",", ":")).encode()
            await respond(send, status, [_JSON, *reply_headers, *(extra or [])], body)
            return status

        match = self._routes.match(scope["method"], scope["path"])
        if match is None:
            if self.web_client.serves(scope["method"], scope["path"]):
                return await self.web_client.serve(scope, receive, send)
            return await message(404, "Not Found")
        try:
            body = await read_body(scope, receive, self._max_payload)
        except BodyTooLargeError:
            return await message(413, "Request Entity Too Large")
        grant: Grant | None = None
        if match.route.auth is not Auth.PUBLIC:
            try:
                grant = await self._authorizer.authorize(
                    match.route, header(scope, b"authorization")
                )
            except DeniedError as denied:
                challenge = [(b"www-authenticate", denied.challenge.encode())]
                return await message(denied.status, denied.message, challenge)

        event = build_event(scope, match, body, request_id, grant)
        request = InvokeRequest(json.dumps(event, separators=(",", ":")).encode())
        try:
            async with asyncio.timeout(self.integration_timeout_s):
                result = await self._runtime.invoke(match.fn, request)
        except (TimeoutError, RuntimeStoppedError):
            return await message(503, "Service Unavailable")
        if result.function_error:
            return await message(500, "Internal Server Error")
        try:
            status, headers, payload = to_http(result.payload)
        except MalformedResponseError as e:
            log.warning("[%s] %s: the gateway answers 500", match.fn.name, e)
            return await message(500, "Internal Server Error")
        await respond(send, status, [*headers, *reply_headers], payload)
        return status
