"""The local API Gateway WebSocket API: ``$connect`` authorizer, route selection, ``@connections``.

One ASGI app on one port serves both faces of a WebSocket API, as
``{api}.execute-api.{region}.amazonaws.com/{stage}`` does:

- ``ws://``: the handshake runs the declared Lambda REQUEST authorizer, then the
  ``$connect`` route's function (a 2xx accepts); each text message goes to the
  route its ``action`` names, else to ``$default``; a close (by either side, an
  idle timeout or the maximum duration) runs ``$disconnect``.
- ``http://``: the ``@connections`` management API that boto3's
  ``apigatewaymanagementapi`` client calls (POST, GET and DELETE
  ``/@connections/{connectionId}``, with or without the ``/{stage}`` prefix).

Frames over 32 KB and messages over 128 KB close the connection with 1009, and a
binary frame with 1003, as the service does (:class:`ApiGatewayWSProtocol`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import unquote

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import CloseCode, Frame
from websockets.server import ServerProtocol

from blueprint.model import WS_CONNECT, WS_DEFAULT, WS_DISCONNECT, Function, Platform, WebSocketApi
from local_runtime import config
from local_runtime.asgi import BodyTooLargeError, Headers, read_body, respond
from local_runtime.websocket_events import (
    Handshake,
    PolicyError,
    authorizer_event,
    connect_event,
    disconnect_event,
    message_event,
    method_arn,
    new_id,
    read_policy,
    select_route,
)
from local_runtime.workers import InvokeRequest, InvokeResult, LambdaRuntime, RuntimeStoppedError

log = logging.getLogger("local_runtime.websocket")

_JSON: Final = (b"content-type", b"application/json")
_CONNECTIONS_PATH: Final = re.compile(r"^(?:/[^/@]+)?/@connections/([^/]+)$")
CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001  # idle timeout and maximum duration
CLOSE_UNSUPPORTED: Final = 1003  # a binary frame
CLOSE_NO_STATUS: Final = 1005
CLOSE_TOO_BIG: Final = 1009


class _ApiGatewayServerProtocol(ServerProtocol):
    """websockets' server side, closing oversized input with API Gateway's reason."""

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        super().fail(code, "Message too big" if code == CloseCode.MESSAGE_TOO_BIG else reason)


class ApiGatewayWSProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets (sans-I/O) protocol with API Gateway's limits.

    A frame over 32 KB or a message over 128 KB closes the connection with 1009
    "Message too big"; a binary frame closes it with 1003, as API Gateway takes
    no binary frames from clients. No permessage-deflate: API Gateway does not
    negotiate it, and the frame limit then bounds what is on the wire.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = _ApiGatewayServerProtocol(
            extensions=[],
            max_size=(config.WS_MESSAGE_MAX_BYTES, config.WS_FRAME_MAX_BYTES),
            logger=logging.getLogger("uvicorn.error"),
        )

    def handle_bytes(self, event: Frame) -> None:
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(CLOSE_UNSUPPORTED, "Binary frames are not supported")
        self.queue.put_nowait(
            {
                "type": "websocket.disconnect",
                "code": CLOSE_UNSUPPORTED,
                "reason": "Binary frames are not supported",
            }
        )
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.transport.close()


@dataclass
class Connection:
    """One open WebSocket connection, as ``@connections`` sees it."""

    handshake: Handshake
    authorizer: dict[str, Any] | None
    send: Send
    last_active_s: float = field(default_factory=time.time)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return self.handshake.connection_id

    def info(self) -> dict[str, Any]:
        """The ``GetConnection`` answer."""
        connected = self.handshake.connected_at_ms / 1000
        return {
            "connectedAt": _iso(connected),
            "identity": {
                "sourceIp": self.handshake.source_ip,
                "userAgent": self.handshake.user_agent,
            },
            "lastActiveAt": _iso(self.last_active_s),
        }


def _iso(epoch_s: float) -> str:
    return (
        datetime.fromtimestamp(epoch_s, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


class _Rejected(Exception):
    def __init__(self, status: int, message: str | None, headers: Headers | None = None) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message
        self.headers = headers or []


class WebSocketGateway:
    """The ASGI app of the local WebSocket API and its ``@connections`` endpoint.

    Args:
        api: the declared WebSocket API.
        platform: the declaration (to find the functions of the routes).
        runtime: the Lambda runtime that invokes them.
        idle_timeout_s: close a connection without inbound messages for this long
            (default: the declaration's, API Gateway's 10 minutes).
        max_duration_s: close any connection this long after it opened (default: 2 hours).
    """

    def __init__(
        self,
        api: WebSocketApi,
        platform: Platform,
        runtime: LambdaRuntime,
        *,
        idle_timeout_s: float | None = None,
        max_duration_s: float | None = None,
        integration_timeout_s: float = config.WS_INTEGRATION_TIMEOUT_S,
    ) -> None:
        self.api = api
        self._runtime = runtime
        self._authorizer = platform.function(api.authorizer)
        self._routes: dict[str, Function] = {
            r.key: platform.function(r.function) for r in api.routes
        }
        self._actions = frozenset(k for k in self._routes if not k.startswith("$"))
        self.idle_timeout_s = float(
            api.idle_timeout_s if idle_timeout_s is None else idle_timeout_s
        )
        self.max_duration_s = float(
            api.max_duration_s if max_duration_s is None else max_duration_s
        )
        self.integration_timeout_s = integration_timeout_s
        self.connections: dict[str, Connection] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._serve_socket(scope, receive, send)
        elif scope["type"] == "http":
            await self._serve_management(scope, receive, send)

    # --- invoking --------------------------------------------------------------

    async def _invoke(self, fn: Function, event: Mapping[str, Any]) -> InvokeResult | None:
        """Invoke ``fn``; None when it timed out or the runtime is stopping."""
        request = InvokeRequest(json.dumps(event, separators=(",", ":")).encode())
        try:
            async with asyncio.timeout(self.integration_timeout_s):
                return await self._runtime.invoke(fn, request)
        except (TimeoutError, RuntimeStoppedError):
            return None

    # --- the handshake -----------------------------------------------------------

    async def _authorize(self, handshake: Handshake, request_id: str) -> dict[str, Any]:
        started = time.perf_counter()
        result = await self._invoke(self._authorizer, authorizer_event(handshake, request_id))
        latency = int((time.perf_counter() - started) * 1000)
        if result is None:
            raise _Rejected(500, "Internal server error")
        if result.function_error:
            error = _loads(result.payload)
            if isinstance(error, dict) and error.get("errorMessage") == "Unauthorized":
                raise _Rejected(401, "Unauthorized")
            log.warning("[%s] failed: %s", self._authorizer.name, result.payload[:500].decode())
            raise _Rejected(500, "Internal server error")
        try:
            decision = read_policy(_loads(result.payload), method_arn(), latency)
        except PolicyError as e:
            log.warning("[%s] %s: the handshake fails with 500", self._authorizer.name, e)
            raise _Rejected(500, "Internal server error") from e
        if not decision.allowed:
            raise _Rejected(401, "Unauthorized")
        return decision.authorizer

    async def _connect(
        self, handshake: Handshake, request_id: str, authorizer: dict[str, Any]
    ) -> str | None:
        """Run ``$connect``; the subprotocol to accept (if the function chose one)."""
        fn = self._routes[WS_CONNECT]
        result = await self._invoke(fn, connect_event(handshake, request_id, authorizer))
        if result is None or result.function_error:
            raise _Rejected(500, "Internal server error")
        reply = _loads(result.payload)
        status = reply.get("statusCode", 200) if isinstance(reply, dict) else 200
        if not isinstance(status, int) or not 200 <= status <= 299:
            body = reply.get("body") if isinstance(reply, dict) else None
            code = status if isinstance(status, int) and 100 <= status <= 599 else 500
            raise _Rejected(code, body if isinstance(body, str) else None)
        headers = reply.get("headers") if isinstance(reply, dict) else None
        for name, value in (headers or {}).items():
            if str(name).lower() == "sec-websocket-protocol":
                return str(value)
        return None

    async def _serve_socket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (await receive())["type"] != "websocket.connect":
            return
        handshake = Handshake.from_scope(scope, new_id())
        request_id = new_id()
        try:
            authorizer = await self._authorize(handshake, request_id)
            subprotocol = await self._connect(handshake, request_id, authorizer)
        except _Rejected as rejected:
            log.info("WS $connect %d %s", rejected.status, handshake.connection_id)
            body = json.dumps({"message": rejected.message}).encode()
            headers = [_JSON, (b"content-length", str(len(body)).encode())]
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": rejected.status,
                    "headers": headers,
                }
            )
            await send({"type": "websocket.http.response.body", "body": body})
            return
        accept: dict[str, Any] = {"type": "websocket.accept"}
        if subprotocol:
            accept["subprotocol"] = subprotocol
        await send(accept)
        conn = Connection(handshake, authorizer, send)
        self.connections[conn.id] = conn
        log.info("WS $connect 200 %s", conn.id)
        try:
            code, reason = await self._pump(conn, receive)
        finally:
            self.connections.pop(conn.id, None)
        log.info("WS $disconnect %d %s", code, conn.id)
        event = disconnect_event(handshake, new_id(), authorizer, code, reason)
        try:
            await self._invoke(self._routes[WS_DISCONNECT], event)
        except asyncio.CancelledError:
            # the gateway is stopping with this $disconnect still queued: API Gateway
            # too delivers $disconnect on a best-effort basis; the record expires (TTL)
            log.info("WS $disconnect not delivered (stopping) %s", conn.id)

    # --- messages ----------------------------------------------------------------

    async def _pump(self, conn: Connection, receive: Receive) -> tuple[int, str]:
        """Route messages until the connection closes; its close code and reason."""
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + self.max_duration_s
        idle_since = loop.time()
        inflight: set[asyncio.Task[None]] = set()
        closing = asyncio.ensure_future(conn.closing.wait())
        incoming: asyncio.Future[Any] | None = None
        try:
            while True:
                if incoming is None:
                    incoming = asyncio.ensure_future(receive())
                deadline = min(ends_at, idle_since + self.idle_timeout_s)
                done, _ = await asyncio.wait(
                    {incoming, closing},
                    timeout=max(0.0, deadline - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if incoming in done:
                    message = incoming.result()
                    incoming = None
                    if message["type"] == "websocket.disconnect":
                        code = int(message.get("code") or CLOSE_NO_STATUS)
                        return code, message.get("reason") or ""
                    text = message.get("text")
                    if text is None:  # binary frames are refused by the protocol already
                        continue
                    idle_since = loop.time()
                    conn.last_active_s = time.time()
                    task = asyncio.create_task(self._route(conn, text))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                elif closing in done:  # DeleteConnection
                    await self._close(conn, CLOSE_NORMAL, "")
                    return CLOSE_NORMAL, ""
                else:  # idle timeout or maximum duration
                    await self._close(conn, CLOSE_GOING_AWAY, "Going away")
                    return CLOSE_GOING_AWAY, "Going away"
        finally:
            for pending in (incoming, closing):
                if pending is not None:
                    pending.cancel()

    async def _close(self, conn: Connection, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await conn.send({"type": "websocket.close", "code": code, "reason": reason})

    async def _route(self, conn: Connection, body: str) -> None:
        route_key = select_route(body, self._actions)
        fn = self._routes.get(route_key) or self._routes[WS_DEFAULT]
        request_id, message_id = new_id(), new_id()
        event = message_event(
            conn.handshake, route_key, body, request_id, message_id, conn.authorizer
        )
        result = await self._invoke(fn, event)
        log.info(
            "WS %s %s %s",
            route_key,
            "error" if result is None or result.function_error else "ok",
            conn.id,
        )
        # Without a route response API Gateway sends nothing back, except on a failed integration.
        if result is None or result.function_error:
            error = {
                "message": "Internal server error",
                "connectionId": conn.id,
                "requestId": request_id,
            }
            await self._post(conn, json.dumps(error).encode())

    async def _post(self, conn: Connection, data: bytes) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            await conn.send({"type": "websocket.send", "bytes": data})
        else:
            await conn.send({"type": "websocket.send", "text": text})

    # --- @connections ------------------------------------------------------------

    async def _serve_management(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = new_id()
        status = await self._manage(scope, receive, send, request_id)
        log.info(
            "%s %s %d %.1fms",
            scope["method"],
            scope["path"],
            status,
            (time.perf_counter() - started) * 1000,
        )

    async def _manage(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> int:
        base: Headers = [_JSON, (b"x-amzn-requestid", request_id.encode())]

        async def error(status: int, error_type: str, message: str | None) -> int:
            headers = [*base, (b"x-amzn-errortype", error_type.encode())]
            await respond(send, status, headers, json.dumps({"message": message}).encode())
            return status

        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        match = _CONNECTIONS_PATH.match(raw_path)
        if match is None:
            return await error(403, "ForbiddenException", "Forbidden")
        method = scope["method"]
        conn = self.connections.get(unquote(match.group(1)))
        if method == "POST":
            try:
                data = await read_body(scope, receive, config.WS_MESSAGE_MAX_BYTES)
            except BodyTooLargeError:
                return await error(413, "PayloadTooLargeException", "Message too long")
            if conn is None or conn.closing.is_set():
                return await error(410, "GoneException", None)
            try:
                await self._post(conn, data)
            except Exception:  # the socket went away meanwhile
                return await error(410, "GoneException", None)
            await respond(send, 200, base)
            return 200
        if method not in ("GET", "DELETE"):
            return await error(403, "ForbiddenException", "Forbidden")
        if conn is None or conn.closing.is_set():
            return await error(410, "GoneException", None)
        if method == "GET":
            await respond(send, 200, base, json.dumps(conn.info()).encode())
            return 200
        conn.closing.set()
        await respond(send, 204, base[1:])
        return 204


def _loads(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except ValueError:
        return None
