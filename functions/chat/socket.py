"""Chat actions over the WebSocket API: send, receipts, typing and presence.

Each action arrives on its own route (``sendMessage``, ``markRead``,
``markDelivered``, ``typing``, ``setPresence``, ``getPresence``), is checked
against its schema, calls one logic function and answers the sending
connection; what the change means for others is pushed by
:mod:`functions.chat.delivery`. Every refusal is an ``error`` message with a
stable ``code`` (the REST API's codes; ``invalid_payload`` for a payload that
does not match its schema) and the socket stays open. The protocol is in
docs/websocket.md.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, ValidationError

from functions.chat import logic
from functions.chat import service as svc
from functions.chat.delivery import LIVE_FANOUT_LIMIT, message_json, receipt_frame
from functions.chat.schemas import AttachmentIn, Id, Text
from lwm_core import realtime
from lwm_core.connections import ONLINE, Connection, DynamoConnectionStore
from lwm_core.errors import ProblemError
from lwm_core.models import StrictModel
from lwm_core.observability import logger
from lwm_core.push import sandbox_connections, sandbox_pusher

INVALID_PAYLOAD = "invalid_payload"
INTERNAL_ERROR = "internal_error"

MESSAGE_SENT = "message.sent"
TYPING = "typing"
PRESENCE = "presence"


class _Action(StrictModel):
    action: Annotated[str, StringConstraints(max_length=64)]


class SendMessage(_Action):
    conversation_id: Id
    client_message_id: Id = Field(description="Required: a resend with it is answered, not stored")
    text: Text = ""
    reply_to: Id | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=5)


class MoveReceipt(_Action):
    conversation_id: Id
    message_id: Id


class Typing(_Action):
    conversation_id: Id
    state: Literal["start", "stop"] = "start"


class SetPresence(_Action):
    status: Literal["online", "away"]


class GetPresence(_Action):
    conversation_id: Id


Reply = dict[str, Any] | None


def send_message(who: realtime.Caller, body: SendMessage) -> Reply:
    delivery = svc.delivery()
    lookups: list[Future[list[Connection]]] = []  # the members' devices, read during the commit
    sent = logic.send_message(
        svc.deps(),
        who.user_id,
        body.conversation_id,
        body.text,
        client_message_id=body.client_message_id,
        reply_to=body.reply_to,
        attachments=[a.to_domain() for a in body.attachments],
        on_audience=lambda members: lookups.append(delivery.look_up(members)),
    )
    ack = {
        "type": MESSAGE_SENT,
        "client_message_id": body.client_message_id,
        "created": sent.created,
        "message": message_json(sent.message),
    }
    pusher = sandbox_pusher()
    pusher.to_connection(who.connection_id, ack)
    if sent.created:
        known = lookups[-1] if lookups else None
        delivery.deliver(
            sent.events, (sent.message,), skip_connection=who.connection_id, known=known
        )
    return None


def _receipt(kind: str) -> Callable[[realtime.Caller, MoveReceipt], Reply]:
    move = logic.mark_read if kind == "read" else logic.mark_delivered

    def action(who: realtime.Caller, body: MoveReceipt) -> Reply:
        outcome = move(svc.deps(), who.user_id, body.conversation_id, body.message_id)
        if outcome.events:
            svc.delivery().deliver(outcome.events)  # the sender's devices get it too
            return None
        member = outcome.value  # it was there already: tell the sender where it stands
        current = member.last_read_id if kind == "read" else member.last_delivered_id
        return receipt_frame(body.conversation_id, who.user_id, kind, current or body.message_id)

    return action


def typing(who: realtime.Caller, body: Typing) -> Reply:
    members = logic.audience(svc.deps(), who.user_id, body.conversation_id)
    if len(members) <= LIVE_FANOUT_LIMIT:
        frame = {
            "type": TYPING,
            "conversation_id": body.conversation_id,
            "user_id": who.user_id,
            "state": body.state,
        }
        sandbox_pusher().to_users([u for u in members if u != who.user_id], frame)
    return None


def _store() -> DynamoConnectionStore:
    return sandbox_connections()


def set_presence(who: realtime.Caller, body: SetPresence) -> Reply:
    store = _store()
    if not store.set_away(who.connection_id, who.user_id, body.status != ONLINE):
        raise _Refused("connection_not_found", "this connection is not recorded; reconnect")
    status = store.presence([who.user_id])
    contacts = logic.direct_contacts(svc.deps(), who.user_id)
    frame = {"type": PRESENCE, "users": status}
    sandbox_pusher().to_users([*contacts, who.user_id], frame, exclude=[who.connection_id])
    return frame


def get_presence(who: realtime.Caller, body: GetPresence) -> Reply:
    members = logic.audience(svc.deps(), who.user_id, body.conversation_id)
    users = _store().presence(members)
    return {"type": PRESENCE, "conversation_id": body.conversation_id, "users": users}


class _Refused(Exception):
    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code, self.detail = code, detail


Handler = Callable[[realtime.Caller, Any], Reply]
ACTIONS: dict[str, tuple[type[_Action], Handler]] = {
    "sendMessage": (SendMessage, send_message),
    "markRead": (MoveReceipt, _receipt("read")),
    "markDelivered": (MoveReceipt, _receipt("delivered")),
    "typing": (Typing, typing),
    "setPresence": (SetPresence, set_presence),
    "getPresence": (GetPresence, get_presence),
}


def _problems(e: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "code": err["type"]}
        for err in e.errors(include_url=False, include_input=False)
    ]


def answer(who: realtime.Caller, raw: str | None) -> Reply:
    """Run one action; the reply for the sending connection (None: it was answered)."""
    try:
        payload = json.loads(raw or "")
    except ValueError:
        return realtime.error(realtime.MALFORMED_JSON, "the message is not JSON")
    action = payload.get("action") if isinstance(payload, dict) else None
    if action not in ACTIONS:  # only reachable when routed here by mistake
        return realtime.error(
            realtime.UNKNOWN_ACTION, f"no action called {action!r}", action=action
        )
    schema, run = ACTIONS[action]
    extra: dict[str, Any] = {"action": action}
    if action == "sendMessage" and isinstance(payload.get("client_message_id"), str):
        extra["client_message_id"] = payload["client_message_id"]
    try:
        return run(who, schema.model_validate(payload))
    except ValidationError as e:
        detail = "the payload does not match the action's schema"
        return realtime.error(INVALID_PAYLOAD, detail, errors=_problems(e), **extra)
    except ProblemError as e:
        if e.errors:
            extra["errors"] = [f.as_dict() for f in e.errors]
        return realtime.error(e.code, e.detail, **extra)
    except _Refused as e:
        return realtime.error(e.code, e.detail, **extra)
    except Exception:
        logger.exception("chat action failed", extra={"action": action})
        return realtime.error(INTERNAL_ERROR, "the action failed; retry it", **extra)


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point of the chat routes of the WebSocket API."""
    who = realtime.caller(event)
    reply = answer(who, event.get("body"))
    if reply is not None:
        if reply.get("type") == "error":
            logger.info("action refused", extra={"code": reply["code"], "user_id": who.user_id})
        sandbox_pusher().to_connection(who.connection_id, reply)
    return {"statusCode": 200}
