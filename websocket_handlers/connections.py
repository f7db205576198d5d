"""$connect and $disconnect: keep the connection records every push reads."""

from __future__ import annotations

from typing import Any

from lwm_core.connections import DynamoConnectionStore
from lwm_core.observability import logger
from lwm_core.push import sandbox_connections
from lwm_core.realtime import BEARER_SUBPROTOCOL, caller, offered_subprotocols


def _store() -> DynamoConnectionStore:
    return sandbox_connections()


def on_connect(event: dict[str, Any], store: DynamoConnectionStore) -> dict[str, Any]:
    """Record the connection; accept the bearer subprotocol when the client offered it."""
    who = caller(event)
    if not who.user_id:  # only reachable without the authorizer
        return {"statusCode": 401}
    store.add(who.connection_id, who.user_id)
    logger.info("connected", extra={"connection_id": who.connection_id, "user_id": who.user_id})
    response: dict[str, Any] = {"statusCode": 200}
    if BEARER_SUBPROTOCOL in [p.lower() for p in offered_subprotocols(event)]:
        # A browser fails the handshake unless the server picks one offered subprotocol.
        response["headers"] = {"Sec-WebSocket-Protocol": BEARER_SUBPROTOCOL}
    return response


def on_disconnect(event: dict[str, Any], store: DynamoConnectionStore) -> dict[str, Any]:
    """Forget the connection."""
    who = caller(event)
    store.remove(who.connection_id)
    logger.info("disconnected", extra={"connection_id": who.connection_id, "user_id": who.user_id})
    return {"statusCode": 200}


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point for the $connect and $disconnect routes."""
    if caller(event).event_type == "CONNECT":
        return on_connect(event, _store())
    return on_disconnect(event, _store())
