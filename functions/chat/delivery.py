"""Live delivery of committed chat changes to members' devices (docs/websocket.md).

After a change is committed (and its events are in the outbox), each event is
pushed as one server message to every open connection of the users it
concerns, through ``lwm_core.push`` (posts made concurrently). Delivery never
fails the request that caused it: the change is stored, clients that missed a
push catch up from history (``after=``), and when a new message reaches no
device of a member a ``message.undelivered`` event goes to the outbox, for the
notification service.

Receipts and membership changes in groups larger than ``live_fanout_limit``
reach only the acting user's own devices: a receipt per member per message to
every member would grow with the square of the group (clients read receipts
from ``GET .../members``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from functions.chat import logic
from functions.chat.domain import (
    Event,
    MembershipChanged,
    Message,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    MessageUndelivered,
    ReactionToggled,
    ReceiptMoved,
    RequestAnswered,
    RequestSent,
)
from functions.chat.schemas import ChatMessageOut
from lwm_core.connections import Connection
from lwm_core.observability import logger
from lwm_core.push import Pusher, PushResult

LIVE_FANOUT_LIMIT = 100

# Server message types (the "type" of each frame).
MESSAGE_NEW = "message.new"
MESSAGE_EDITED = "message.edited"
MESSAGE_DELETED = "message.deleted"
MESSAGE_REACTIONS = "message.reactions"
RECEIPT = "receipt"
MEMBERS_CHANGED = "conversation.members"
REQUEST_NEW = "request.new"
REQUEST_ANSWERED = "request.answered"


def message_json(message: Message) -> dict[str, Any]:
    """A message as clients see it everywhere (the REST ``ChatMessage``)."""
    return ChatMessageOut.from_domain(message).model_dump(mode="json")


def receipt_frame(conversation_id: str, user_id: str, kind: str, message_id: str) -> dict[str, Any]:
    return {
        "type": RECEIPT,
        "conversation_id": conversation_id,
        "user_id": user_id,
        "kind": kind,
        "message_id": message_id,
    }


@dataclass(frozen=True)
class Push:
    """One server message for a set of users."""

    users: tuple[str, ...]
    frame: dict[str, Any]


def _small(members: Sequence[str], actor: str, limit: int) -> tuple[str, ...]:
    return tuple(members) if len(members) <= limit else (actor,)


def pushes(
    events: Iterable[Event],
    messages: Mapping[str, Message],
    *,
    limit: int = LIVE_FANOUT_LIMIT,
) -> list[tuple[Event, Push]]:
    """What each event tells whom (pure: no I/O).

    ``messages``: the messages the events are about, by id (the logic's results).
    Events without a live message (``message.undelivered``) yield nothing.
    """
    out: list[tuple[Event, Push]] = []
    for e in events:
        push: Push | None = None
        frame: dict[str, Any]
        if isinstance(e, MessagePosted) and e.message_id in messages:
            frame = {"type": MESSAGE_NEW, "message": message_json(messages[e.message_id])}
            push = Push(e.member_ids, frame)
        elif isinstance(e, MessageEdited | MessageDeleted | ReactionToggled):
            kind = {
                MessageEdited: MESSAGE_EDITED,
                MessageDeleted: MESSAGE_DELETED,
                ReactionToggled: MESSAGE_REACTIONS,
            }[type(e)]
            if e.message_id in messages:
                push = Push(
                    e.member_ids, {"type": kind, "message": message_json(messages[e.message_id])}
                )
        elif isinstance(e, ReceiptMoved):
            frame = receipt_frame(e.conversation_id, e.user_id, e.kind, e.up_to_message_id)
            push = Push(_small(e.member_ids, e.user_id, limit), frame)
        elif isinstance(e, MembershipChanged):
            frame = {
                "type": MEMBERS_CHANGED,
                "conversation_id": e.conversation_id,
                "added": list(e.added),
                "removed": list(e.removed),
                "new_owner_id": e.new_owner_id,
            }
            users = (
                (*e.member_ids, *e.removed)
                if len(e.member_ids) <= limit
                else (*e.added, *e.removed)
            )
            push = Push(tuple(dict.fromkeys(users)), frame)
        elif isinstance(e, RequestSent):
            frame = {"type": REQUEST_NEW, "request_id": e.request_id, "mentee_id": e.mentee_id}
            push = Push((e.mentor_id,), frame)
        elif isinstance(e, RequestAnswered):
            frame = {
                "type": REQUEST_ANSWERED,
                "request_id": e.request_id,
                "status": e.status.value,
                "conversation_id": e.conversation_id,
            }
            push = Push((e.mentee_id, e.mentor_id), frame)
        if push is not None:
            out.append((e, push))
    return out


class Delivery:
    """Pushes committed events to members' devices; records undelivered messages.

    Args:
        deps: the chat logic's collaborators (the outbox write of ``message.undelivered``).
        pusher: the sandbox's pusher (``lwm_core.push.sandbox_pusher``).
    """

    def __init__(self, deps: logic.Deps, pusher: Pusher, limit: int = LIVE_FANOUT_LIMIT) -> None:
        self._deps = deps
        self._pusher = pusher
        self._limit = limit

    def look_up(self, member_ids: Sequence[str]) -> Future[list[Connection]]:
        """Start reading the members' connections (while the message commits)."""
        return self._pusher.look_up(member_ids)

    def deliver(
        self,
        events: Iterable[Event],
        messages: Iterable[Message] = (),
        *,
        skip_connection: str | None = None,
        known: Future[list[Connection]] | None = None,
    ) -> None:
        """Push every event; never raises (the change is committed whatever happens here).

        ``skip_connection``: the sender's socket, answered on its own (``message.sent``).
        ``known``: the members' connections from :meth:`look_up`, for the new message.
        """
        by_id = {m.id: m for m in messages}
        for event, push in pushes(events, by_id, limit=self._limit):
            exclude = (skip_connection,) if skip_connection else ()
            read = known if isinstance(event, MessagePosted) else None
            try:
                result: PushResult | None = self._pusher.to_users(
                    push.users, push.frame, exclude=exclude, known=read
                )
            except Exception:  # the connections table or @connections failed as a whole
                logger.exception("live delivery failed", extra={"type": push.frame["type"]})
                result = None
            if isinstance(event, MessagePosted):
                self._fallback(event, result)

    def _fallback(self, event: MessagePosted, result: PushResult | None) -> None:
        """Members with no device reached get a notification (through the outbox)."""
        missed = set(event.member_ids) if result is None else set(result.unreachable)
        missed.discard(event.author_id)
        if not missed:
            return
        undelivered = MessageUndelivered(
            conversation_id=event.conversation_id,
            message_id=event.message_id,
            author_id=event.author_id,
            recipient_ids=tuple(sorted(missed)),
            created_at=event.created_at,
            preview=event.preview,
        )
        try:
            logic.record_undelivered(self._deps, undelivered)
        except Exception:
            logger.exception("could not record an undelivered message", extra=_ids(event))


def _ids(event: MessagePosted) -> dict[str, str]:
    return {"conversation_id": event.conversation_id, "message_id": event.message_id}
