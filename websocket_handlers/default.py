"""$default and ping: every message no other route takes gets an answer, never silence.

Malformed JSON, a message without a string ``action`` and an unknown action
are answered with an error message on the same connection (the socket stays
open); ``{"action": "ping"}`` is answered with a pong.
"""

from __future__ import annotations

import json
from typing import Any

from lwm_core import realtime as protocol
from lwm_core.observability import logger
from lwm_core.push import sandbox_pusher
from lwm_core.realtime import caller


def answer(body: str | None) -> dict[str, Any]:
    """What the sender of ``body`` is told."""
    try:
        message = json.loads(body or "")
    except ValueError:
        return protocol.error(protocol.MALFORMED_JSON, "the message is not JSON")
    if not isinstance(message, dict) or not isinstance(message.get("action"), str):
        return protocol.error(
            protocol.INVALID_MESSAGE, 'a message is a JSON object with a string "action"'
        )
    action = message["action"]
    if action == "ping":
        return protocol.pong(message.get("echo"))
    return protocol.error(protocol.UNKNOWN_ACTION, f"no action called {action!r}", action=action)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for $default and ping: answer through @connections."""
    who = caller(event)
    reply = answer(event.get("body"))
    if reply.get("type") == "error":
        logger.info("message refused", extra={"code": reply["code"], "user_id": who.user_id})
    sandbox_pusher().to_connection(who.connection_id, reply)
    return {"statusCode": 200}
