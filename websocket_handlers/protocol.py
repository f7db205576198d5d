"""The platform's socket protocol: server messages and error codes (docs/websocket.md)."""

from __future__ import annotations

import time
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
