"""The platform's socket protocol, shared by every function behind the WebSocket API.

Reading API Gateway WebSocket events (who is connected, on which route) and
the server messages every feature uses: errors with their codes, and pong
(docs/websocket.md).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# The subprotocol a browser offers to carry its token: `Sec-WebSocket-Protocol: bearer, <token>`.
BEARER_SUBPROTOCOL = "bearer"

# Error codes of {"type": "error", "code": ...}.
MALFORMED_JSON = "malformed_json"
UNKNOWN_ACTION = "unknown_action"
INVALID_MESSAGE = "invalid_message"


def error(code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An error message for the sender."""
    return {"type": "error", "code": code, "detail": detail, **extra}


def pong(echo: Any = None) -> dict[str, Any]:
    """The answer to ``{"action": "ping"}``: the server's time, and what the client sent."""
    message: dict[str, Any] = {"type": "pong", "server_time_ms": int(time.time() * 1000)}
    if echo is not None:
        message["echo"] = echo
    return message


@dataclass(frozen=True)
class Caller:
    """The connection an event is about, and the user its $connect authorizer let in."""

    connection_id: str
    user_id: str
    roles: frozenset[str]
    route_key: str
    event_type: str  # CONNECT, MESSAGE or DISCONNECT


def caller(event: Mapping[str, Any]) -> Caller:
    """The caller of a WebSocket event (the authorizer's context travels on every event)."""
    context = event.get("requestContext") or {}
    authorizer = context.get("authorizer") or {}
    user_id = str(authorizer.get("userId") or authorizer.get("principalId") or "")
    return Caller(
        connection_id=str(context.get("connectionId", "")),
        user_id=user_id,
        roles=frozenset(str(authorizer.get("roles") or "").split()),
        route_key=str(context.get("routeKey", "")),
        event_type=str(context.get("eventType", "")),
    )


def offered_subprotocols(event: Mapping[str, Any]) -> list[str]:
    """The subprotocols the client offered in ``Sec-WebSocket-Protocol``, in order."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    raw = str(headers.get("sec-websocket-protocol") or "")
    return [p.strip() for p in raw.split(",") if p.strip()]
