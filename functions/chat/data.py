"""DynamoDB adapter of the chat ports (``ChatRepository``, ``Uow``): one table, no scans.

Item layout (``pk`` / ``sk``; GSIs in ``blueprint.platform.CHAT_TABLE``):

==============================  ==============  =======================================
pk                              sk              what
==============================  ==============  =======================================
``USER#<id>``                   ``SETTINGS``    chat settings
``USER#<blocker>``              ``BLOCK#<id>``  a block
``REQ#<id>``                    ``META``        a request; gsi1 ``INBOX#<mentor>`` /
                                                ``REQ#<id>``, gsi2 ``OUTBOX#<mentee>`` /
                                                ``REQ#<id>``
``CONV#<id>``                   ``META``        a conversation
``CONV#<id>``                   ``MEMBER#<u>``  a member; gsi1 ``USER#<u>`` /
                                                ``ACT#<last activity>#<conv id>``
``CONV#<id>``                   ``ROSTER``      the member ids in joining order and a
                                                revision (``rev``): a post reads them
                                                in one item, not a query of members
``CONV#<id>``                   ``MSG#<ulid>``  a message
``DIRECT#<pair key>``           ``UNIQUE``      the pair's direct conversation (``ref``)
``PENDING#<mentee>#<mentor>``   ``UNIQUE``      the pair's pending request (``ref``)
``CMID#<author>#<client id>``   ``UNIQUE``      a client message id's message (``ref``)
``OUTBOX#<event id>``           ``EVENT``       a domain event, written with the change it
                                                describes; the stream relays it to the bus
                                                (``lwm_core.outbox``); expires in a day
==============================  ==============  =======================================

A :class:`DynamoChatUow` reads straight from the table (consistent reads) with
its own pending writes laid over key lookups and member listings (the logic
reads its writes back, e.g. the members of a conversation it just created). It
buffers writes, merged per item, and commits them with one ``TransactWriteItems``.
Uniqueness items are written with ``attribute_not_exists(pk)``; their
``ConditionalCheckFailed`` becomes the domain error. The roster is written with
the revision it was read at, so concurrent membership changes cannot lose one
another (``MembershipChangedError``; the logic tries again). Ordinary items are
plain puts and deletes: last writer wins per item, like the fakes.

A post reads the conversation, the author's membership and the roster in one
``BatchGetItem`` (``prefetch_membership``) and writes in one transaction: two
calls to the chat table, whatever the group's size. A conversation stored
before rosters existed is read from its member items until its next membership
change writes its roster.

Limits:

* Posting a message moves every member's ``gsi1sk`` (the conversation list's
  order) in the same transaction while it fits in 100 items; in bigger groups
  the members' activity moves right after the commit, one conditional
  ``UpdateItem`` each (forward only), so their lists may lag briefly.
* Above 100 primary writes (a group created or grown by more than ~95 members),
  the commit splits: the first transaction carries every conditioned item and as
  many others as fit, then the rest follow in transactions of 100. A failure in a
  follow-up leaves the earlier ones applied (the writes are idempotent puts, so a
  retry of the operation by the caller completes them).
* GSI listings (conversations, requests) are eventually consistent in AWS and
  do not see the unit of work's own pending writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from types import TracebackType
from typing import Any, Self

from functions.chat import errors
from functions.chat.domain import (
    Attachment,
    Block,
    ChatSettings,
    Conversation,
    ConversationKind,
    DirectReason,
    Event,
    Member,
    MemberRole,
    MentorshipRequest,
    Message,
    MessagePreview,
    RequestBox,
    RequestStatus,
)
from lwm_core.pagination import Page, decode_cursor, encode_cursor

Item = dict[str, Any]

EVENT_SOURCE = "lwm.chat"  # the events' Source on the bus
Key = tuple[str, str]

MAX_TRANSACTION_ITEMS = 100
# Conversations up to this size reorder their members' lists in the posting transaction.
INLINE_ACTIVITY_LIMIT = 25
ACTIVITY_PARALLELISM = 16
# Bigger conversations reorder their members' lists at most this often (one write per
# member each time), so a busy cohort costs its members' lists a minute of lag at most.
ACTIVITY_INTERVAL_S = 60
_UNIQUE_SK = "UNIQUE"
_META = "META"
_ROSTER = "ROSTER"  # the member ids of a conversation, in joining order, in one item
_MEMBER = "MEMBER#"
_MSG = "MSG#"
_MSG_END = "MSG$"  # the first string after every "MSG#..." sort key


# --- binding (once per sandbox) --------------------------------------------------------


@dataclass
class _Binding:
    table_name: str = ""
    region: str | None = None
    endpoint: str | None = None


_binding = _Binding()


def bind_table(table_name: str, region: str | None = None, endpoint: str | None = None) -> None:
    """Point the adapter at the chat table (idempotent; call once per sandbox)."""
    _binding.table_name, _binding.region, _binding.endpoint = table_name, region, endpoint


@cache
def _client(region: str | None, endpoint: str | None) -> Any:
    import boto3  # lazy: not every invocation talks to DynamoDB
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2)
    return boto3.session.Session().client(
        "dynamodb", region_name=region, endpoint_url=endpoint, config=config
    )


@cache
def _codec() -> tuple[Any, Any]:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

    return TypeSerializer(), TypeDeserializer()


def _to_wire(item: Item) -> dict[str, Any]:
    ser, _ = _codec()
    return {k: ser.serialize(v) for k, v in item.items() if v is not None}


def _from_wire(raw: dict[str, Any]) -> Item:
    _, de = _codec()
    return {k: de.deserialize(v) for k, v in raw.items()}


# --- item mapping ------------------------------------------------------------------------


def _ts(value: datetime) -> str:
    """A fixed-width UTC timestamp, so string order is time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _dt(value: Any) -> datetime:
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def _opt_ts(value: datetime | None) -> str | None:
    return _ts(value) if value is not None else None


def _opt_dt(value: Any) -> datetime | None:
    return _dt(value) if value is not None else None


def _conv_pk(conversation_id: str) -> str:
    return f"CONV#{conversation_id}"


def _activity(at: datetime, conversation_id: str) -> str:
    return f"ACT#{_ts(at)}#{conversation_id}"


def _settings_item(s: ChatSettings) -> Item:
    return {
        "pk": f"USER#{s.user_id}",
        "sk": "SETTINGS",
        "user_id": s.user_id,
        "open_to_all": s.open_to_all,
        "request_ttl_days": s.request_ttl_days,
    }


def _settings(i: Item) -> ChatSettings:
    return ChatSettings(str(i["user_id"]), bool(i["open_to_all"]), int(i["request_ttl_days"]))


def _block_item(b: Block) -> Item:
    return {
        "pk": f"USER#{b.blocker_id}",
        "sk": f"BLOCK#{b.blocked_id}",
        "blocker_id": b.blocker_id,
        "blocked_id": b.blocked_id,
        "created_at": _ts(b.created_at),
    }


def _block(i: Item) -> Block:
    return Block(str(i["blocker_id"]), str(i["blocked_id"]), _dt(i["created_at"]))


def _request_item(r: MentorshipRequest) -> Item:
    return {
        "pk": f"REQ#{r.id}",
        "sk": _META,
        "gsi1pk": f"INBOX#{r.mentor_id}",
        "gsi1sk": f"REQ#{r.id}",
        "gsi2pk": f"OUTBOX#{r.mentee_id}",
        "gsi2sk": f"REQ#{r.id}",
        "id": r.id,
        "mentee_id": r.mentee_id,
        "mentor_id": r.mentor_id,
        "text": r.text,
        "created_at": _ts(r.created_at),
        "expires_at": _ts(r.expires_at),
        "status": r.status.value,
        "answered_at": _opt_ts(r.answered_at),
        "decline_reason": r.decline_reason,
        "conversation_id": r.conversation_id,
    }


def _request(i: Item) -> MentorshipRequest:
    return MentorshipRequest(
        id=str(i["id"]),
        mentee_id=str(i["mentee_id"]),
        mentor_id=str(i["mentor_id"]),
        text=str(i["text"]),
        created_at=_dt(i["created_at"]),
        expires_at=_dt(i["expires_at"]),
        status=RequestStatus(i["status"]),
        answered_at=_opt_dt(i.get("answered_at")),
        decline_reason=i.get("decline_reason"),
        conversation_id=i.get("conversation_id"),
    )


def _preview_map(p: MessagePreview | None) -> Item | None:
    if p is None:
        return None
    return {
        "message_id": p.message_id,
        "author_id": p.author_id,
        "text": p.text,
        "created_at": _ts(p.created_at),
        "deleted": p.deleted,
        "attachments": p.attachments,
    }


def _preview(m: Item | None) -> MessagePreview | None:
    if m is None:
        return None
    return MessagePreview(
        message_id=str(m["message_id"]),
        author_id=str(m["author_id"]),
        text=str(m["text"]),
        created_at=_dt(m["created_at"]),
        deleted=bool(m["deleted"]),
        attachments=int(m["attachments"]),
    )


def _conversation_item(c: Conversation) -> Item:
    return {
        "pk": _conv_pk(c.id),
        "sk": _META,
        "id": c.id,
        "kind": c.kind.value,
        "created_at": _ts(c.created_at),
        "last_activity_at": _ts(c.last_activity_at),
        "created_by": c.created_by,
        "title": c.title,
        "direct_key": c.direct_key,
        "direct_reason": c.direct_reason.value if c.direct_reason else None,
        "last_message": _preview_map(c.last_message),
    }


def _conversation(i: Item) -> Conversation:
    reason = i.get("direct_reason")
    return Conversation(
        id=str(i["id"]),
        kind=ConversationKind(i["kind"]),
        created_at=_dt(i["created_at"]),
        last_activity_at=_dt(i["last_activity_at"]),
        created_by=str(i["created_by"]),
        title=i.get("title"),
        direct_key=i.get("direct_key"),
        direct_reason=DirectReason(reason) if reason else None,
        last_message=_preview(i.get("last_message")),
    )


def _member_item(m: Member, activity: str) -> Item:
    return {
        "pk": _conv_pk(m.conversation_id),
        "sk": f"{_MEMBER}{m.user_id}",
        "gsi1pk": f"USER#{m.user_id}",
        "gsi1sk": activity,
        "conversation_id": m.conversation_id,
        "user_id": m.user_id,
        "role": m.role.value,
        "joined_at": _ts(m.joined_at),
        "last_read_id": m.last_read_id,
        "last_delivered_id": m.last_delivered_id,
    }


def _member(i: Item) -> Member:
    return Member(
        conversation_id=str(i["conversation_id"]),
        user_id=str(i["user_id"]),
        role=MemberRole(i["role"]),
        joined_at=_dt(i["joined_at"]),
        last_read_id=i.get("last_read_id"),
        last_delivered_id=i.get("last_delivered_id"),
    )


def _message_item(m: Message) -> Item:
    return {
        "pk": _conv_pk(m.conversation_id),
        "sk": f"{_MSG}{m.id}",
        "id": m.id,
        "conversation_id": m.conversation_id,
        "author_id": m.author_id,
        "text": m.text,
        "created_at": _ts(m.created_at),
        "client_message_id": m.client_message_id,
        "reply_to": m.reply_to,
        "attachments": [
            {"key": a.key, "content_type": a.content_type, "size": a.size, "name": a.name}
            for a in m.attachments
        ],
        # a JSON string: emoji keys are arbitrary text and sets cannot be empty
        "reactions": json.dumps({e: sorted(u) for e, u in m.reactions.items()}),
        "edited_at": _opt_ts(m.edited_at),
        "deleted_at": _opt_ts(m.deleted_at),
    }


def _message(i: Item) -> Message:
    return Message(
        id=str(i["id"]),
        conversation_id=str(i["conversation_id"]),
        author_id=str(i["author_id"]),
        text=str(i["text"]),
        created_at=_dt(i["created_at"]),
        client_message_id=i.get("client_message_id"),
        reply_to=i.get("reply_to"),
        attachments=[
            Attachment(str(a["key"]), str(a["content_type"]), int(a["size"]), a.get("name"))
            for a in i.get("attachments", [])
        ],
        reactions={e: set(u) for e, u in json.loads(str(i.get("reactions", "{}"))).items()},
        edited_at=_opt_dt(i.get("edited_at")),
        deleted_at=_opt_dt(i.get("deleted_at")),
    )


def _unique_key(kind: str, *parts: str) -> Key:
    return ("#".join((kind, *parts)), _UNIQUE_SK)


_UNIQUE_ERRORS: dict[str, type[Exception]] = {
    "DIRECT": errors.DirectConversationExistsError,
    "PENDING": errors.RequestPendingError,
    "CMID": errors.DuplicateClientMessageError,
}
_UNIQUE_MESSAGES = {
    "DIRECT": "the pair has a direct conversation",
    "PENDING": "a request to this mentor is already pending",
    "CMID": "client_message_id already used",
}


def _unique_error(pk: str) -> Exception:
    kind = pk.split("#", 1)[0]
    return _UNIQUE_ERRORS[kind](_UNIQUE_MESSAGES[kind])


# --- the write buffer ------------------------------------------------------------------


@dataclass
class _Write:
    """The final state of one item in this unit of work, and the condition on its base."""

    item: Item | None  # None: delete
    condition: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


class DynamoChatRepository:
    """``ChatRepository`` over the chat table, writing into a unit of work's buffer."""

    def __init__(self, client: Any, table_name: str, uow: DynamoChatUow) -> None:
        self._client = client
        self._table = table_name
        self._uow = uow

    # --- low level
    def _get(self, key: Key) -> Item | None:
        if key in self._uow.writes:
            item = self._uow.writes[key].item
            return dict(item) if item is not None else None
        if key not in self._uow.reads:  # an item is read once per unit of work
            raw = self._client.get_item(
                TableName=self._table,
                Key=_to_wire({"pk": key[0], "sk": key[1]}),
                ConsistentRead=True,
            ).get("Item")
            self._uow.reads[key] = _from_wire(raw) if raw else None
        found = self._uow.reads[key]
        return dict(found) if found is not None else None

    def _prefetch(self, keys: Sequence[Key]) -> None:
        """Read the items not read yet in one round trip (``_get`` then answers from memory)."""
        missing = [k for k in dict.fromkeys(keys) if k not in self._uow.writes]
        missing = [k for k in missing if k not in self._uow.reads]
        if len(missing) < 2:
            return  # one item: a GetItem is as cheap
        found = self._batch_get(missing)
        for key in missing:
            self._uow.reads[key] = found.get(key)

    def _put(self, item: Item, condition: str | None = None, **values: Any) -> None:
        self._uow.stage((item["pk"], item["sk"]), item, condition, values)

    def _delete(self, key: Key, condition: str | None = None, **values: Any) -> None:
        self._uow.stage(key, None, condition, values)

    def _query(self, **kwargs: Any) -> Iterator[Item]:
        """Every item of a query, page after page (stop iterating to stop reading)."""
        start: dict[str, Any] | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            out = self._client.query(TableName=self._table, **kwargs, **extra)
            for raw in out.get("Items", []):
                yield _from_wire(raw)
            start = out.get("LastEvaluatedKey")
            if not start:
                return

    def _claim(self, key: Key, ref: str, *, read_first: bool = True, **attrs: Any) -> None:
        """Write a uniqueness item; its error if taken (now, or at commit).

        ``read_first=False`` leaves the check to the commit's condition alone, one
        read fewer where the item is almost always free (client message ids).
        """
        staged = self._uow.writes.get(key)
        if staged is not None:
            if staged.item is not None:
                raise _unique_error(key[0])
            # freed earlier in this unit of work: keep the condition on the base item
            self._put({"pk": key[0], "sk": key[1], "ref": ref, **attrs})
            return
        if read_first and self._get(key) is not None:
            raise _unique_error(key[0])
        self._put({"pk": key[0], "sk": key[1], "ref": ref, **attrs}, "attribute_not_exists(pk)")

    def _ref(self, key: Key) -> str | None:
        item = self._get(key)
        return str(item["ref"]) if item else None

    # --- settings and blocks
    def get_settings(self, user_id: str) -> ChatSettings | None:
        item = self._get((f"USER#{user_id}", "SETTINGS"))
        return _settings(item) if item else None

    def put_settings(self, settings: ChatSettings) -> None:
        self._put(_settings_item(settings))

    def get_block(self, blocker_id: str, blocked_id: str) -> Block | None:
        item = self._get((f"USER#{blocker_id}", f"BLOCK#{blocked_id}"))
        return _block(item) if item else None

    def put_block(self, block: Block) -> None:
        self._put(_block_item(block))

    def delete_block(self, blocker_id: str, blocked_id: str) -> None:
        self._delete((f"USER#{blocker_id}", f"BLOCK#{blocked_id}"))

    def list_blocks(self, blocker_id: str) -> Sequence[Block]:
        items = self._query(
            KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
            ExpressionAttributeValues=_to_wire({":pk": f"USER#{blocker_id}", ":p": "BLOCK#"}),
            ConsistentRead=True,
        )
        return [_block(i) for i in items]  # sort key order: blocked id

    # --- requests
    def add_request(self, request: MentorshipRequest) -> None:
        if request.status is not RequestStatus.PENDING:
            raise ValueError("a new request is pending")
        key = (f"REQ#{request.id}", _META)
        if self._get(key) is not None:
            raise ValueError(f"duplicate request id {request.id}")
        self._claim(_unique_key("PENDING", request.mentee_id, request.mentor_id), request.id)
        self._put(_request_item(request), "attribute_not_exists(pk)")

    def save_request(self, request: MentorshipRequest) -> None:
        if self._get((f"REQ#{request.id}", _META)) is None:
            raise KeyError(f"no request {request.id} to save")
        slot = _unique_key("PENDING", request.mentee_id, request.mentor_id)
        if request.status is not RequestStatus.PENDING and self._ref(slot) == request.id:
            self._delete(slot, "attribute_not_exists(pk) OR #ref = :ref", ref=request.id)
        self._put(_request_item(request))

    def get_request(self, request_id: str) -> MentorshipRequest | None:
        item = self._get((f"REQ#{request_id}", _META))
        return _request(item) if item else None

    def get_pending_request(self, mentee_id: str, mentor_id: str) -> MentorshipRequest | None:
        request_id = self._ref(_unique_key("PENDING", mentee_id, mentor_id))
        return self.get_request(request_id) if request_id else None

    def list_requests(
        self, user_id: str, box: RequestBox, limit: int, cursor: str | None
    ) -> Page[MentorshipRequest]:
        scope = f"requests:{box.value}"
        index, prefix = ("gsi1", "INBOX") if box is RequestBox.INCOMING else ("gsi2", "OUTBOX")
        pk_name, sk_name = f"{index}pk", f"{index}sk"
        values: dict[str, Any] = {":pk": f"{prefix}#{user_id}", ":p": "REQ#"}
        condition = f"{pk_name} = :pk AND begins_with({sk_name}, :p)"
        if cursor:
            (last,) = decode_cursor(cursor, scope, 1)
            values = {":pk": values[":pk"], ":lo": "REQ#", ":hi": f"REQ#{last}"}
            condition = f"{pk_name} = :pk AND {sk_name} BETWEEN :lo AND :hi"
        found: list[MentorshipRequest] = []
        for item in self._query(
            IndexName=index,
            KeyConditionExpression=condition,
            ExpressionAttributeValues=_to_wire(values),
            ScanIndexForward=False,
            Limit=limit + 2,
        ):
            r = _request(item)
            if cursor and r.id >= str(last):
                continue
            found.append(r)
            if len(found) > limit:
                break
        page, more = found[:limit], len(found) > limit
        nxt = encode_cursor(scope, [page[-1].id]) if more else None
        return Page(page, nxt)

    # --- conversations and members
    def add_conversation(self, conversation: Conversation, members: Sequence[Member]) -> None:
        key = (_conv_pk(conversation.id), _META)
        if self._get(key) is not None:
            raise ValueError(f"duplicate conversation id {conversation.id}")
        if conversation.kind is ConversationKind.DIRECT:
            users = sorted(m.user_id for m in members)
            if len(users) != 2 or conversation.direct_key != "#".join(users):
                raise ValueError("a direct conversation has exactly its pair as members")
            self._claim(_unique_key("DIRECT", conversation.direct_key), conversation.id)
        self._put(_conversation_item(conversation), "attribute_not_exists(pk)")
        activity = _activity(conversation.last_activity_at, conversation.id)
        for m in members:
            self._put(_member_item(m, activity))
        roster = list(dict.fromkeys(m.user_id for m in members))
        self._put(
            {"pk": key[0], "sk": _ROSTER, "member_ids": roster, "rev": 1},
            "attribute_not_exists(pk)",
        )

    def save_conversation(self, conversation: Conversation) -> None:
        key = (_conv_pk(conversation.id), _META)
        before = self._get(key)
        if before is None:
            raise KeyError(f"no conversation {conversation.id} to save")
        item = _conversation_item(conversation)
        if "activity_moved_at" in before:  # the relay's throttle (claim_activity_move)
            item["activity_moved_at"] = before["activity_moved_at"]
        self._put(item)
        if item["last_activity_at"] != before["last_activity_at"]:
            # the conversation list's order: every member's gsi1sk moves with the activity,
            # in the transaction for small conversations; for bigger ones the outbox relay
            # moves them from the stream (move_activity), off the sender's path
            member_ids = self.member_ids(conversation.id)
            if len(member_ids) <= INLINE_ACTIVITY_LIMIT:
                activity = _activity(conversation.last_activity_at, conversation.id)
                for user_id in member_ids:
                    self._uow.move_activity((key[0], f"{_MEMBER}{user_id}"), activity)

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        item = self._get((_conv_pk(conversation_id), _META))
        return _conversation(item) if item else None

    def find_direct(self, a: str, b: str) -> Conversation | None:
        lo, hi = sorted((a, b))
        conversation_id = self._ref(_unique_key("DIRECT", lo, hi))
        return self.get_conversation(conversation_id) if conversation_id else None

    def get_member(self, conversation_id: str, user_id: str) -> Member | None:
        item = self._get((_conv_pk(conversation_id), f"{_MEMBER}{user_id}"))
        return _member(item) if item else None

    def prefetch_membership(self, conversation_id: str, user_id: str) -> None:
        pk = _conv_pk(conversation_id)
        self._prefetch([(pk, _META), (pk, f"{_MEMBER}{user_id}"), (pk, _ROSTER)])

    def member_ids(self, conversation_id: str) -> tuple[str, ...]:
        roster = self._get((_conv_pk(conversation_id), _ROSTER))
        if roster is not None:
            return tuple(str(u) for u in roster["member_ids"])
        # a conversation stored before rosters: its member items
        return tuple(m.user_id for m in self.list_members(conversation_id))

    def _change_roster(self, conversation_id: str, *, add: str = "", remove: str = "") -> None:
        """Keep the roster in step with a member item written in this unit of work.

        The roster's write is conditioned on the revision it was read at, so two
        membership changes at once cannot lose one another (the later one is
        refused with ``MembershipChangedError`` and tried again by the logic).
        """
        key = (_conv_pk(conversation_id), _ROSTER)
        base = self._get(key)
        if base is None:  # built from the member items, as they are before this change
            ids = [m.user_id for m in self.list_members(conversation_id)]
            condition, values, rev = "attribute_not_exists(pk)", {}, 1
        else:
            ids = [str(u) for u in base["member_ids"]]
            condition, values, rev = "rev = :rev", {"rev": base["rev"]}, int(base["rev"]) + 1
        if add and add not in ids:
            ids.append(add)
        if remove in ids:
            ids.remove(remove)
        self._put({"pk": key[0], "sk": _ROSTER, "member_ids": ids, "rev": rev}, condition, **values)

    def list_members(self, conversation_id: str) -> Sequence[Member]:
        pk = _conv_pk(conversation_id)
        if pk not in self._uow.member_reads:  # the members are read once per unit of work
            self._uow.member_reads[pk] = {
                (i["pk"], i["sk"]): i
                for i in self._query(
                    KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
                    ExpressionAttributeValues=_to_wire({":pk": pk, ":p": _MEMBER}),
                    ConsistentRead=True,
                )
            }
        items = dict(self._uow.member_reads[pk])
        for key, w in self._uow.writes.items():  # this unit of work's own changes
            if key[0] == pk and key[1].startswith(_MEMBER):
                if w.item is None:
                    items.pop(key, None)
                else:
                    items[key] = w.item
        members = [_member(i) for i in items.values()]
        return sorted(members, key=lambda m: (m.joined_at, m.user_id))

    def put_member(self, member: Member) -> None:
        conversation = self._get((_conv_pk(member.conversation_id), _META))
        if conversation is None:
            raise KeyError(f"no conversation {member.conversation_id}")
        activity = _activity(_dt(conversation["last_activity_at"]), member.conversation_id)
        if member.user_id not in self.member_ids(member.conversation_id):
            self._change_roster(member.conversation_id, add=member.user_id)  # not a receipt
        self._put(_member_item(member, activity))

    def delete_member(self, conversation_id: str, user_id: str) -> None:
        if user_id in self.member_ids(conversation_id):
            self._change_roster(conversation_id, remove=user_id)
        self._delete((_conv_pk(conversation_id), f"{_MEMBER}{user_id}"))

    def list_conversations(
        self, user_id: str, limit: int, cursor: str | None
    ) -> Page[tuple[Conversation, Member]]:
        extra: dict[str, Any] = {}
        if cursor:
            at, cid = decode_cursor(cursor, "conversations", 2)
            extra["ExclusiveStartKey"] = _to_wire(
                {
                    "pk": _conv_pk(str(cid)),
                    "sk": f"{_MEMBER}{user_id}",
                    "gsi1pk": f"USER#{user_id}",
                    "gsi1sk": f"ACT#{at}#{cid}",
                }
            )
        out = self._client.query(
            TableName=self._table,
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :pk AND begins_with(gsi1sk, :p)",
            ExpressionAttributeValues=_to_wire({":pk": f"USER#{user_id}", ":p": "ACT#"}),
            ScanIndexForward=False,
            Limit=limit + 1,
            **extra,
        )
        rows = [_from_wire(raw) for raw in out.get("Items", [])]
        page, more = rows[:limit], len(rows) > limit
        conversations = self._batch_get([(i["pk"], _META) for i in page])
        items: list[tuple[Conversation, Member]] = []
        for row in page:
            conv = conversations.get((row["pk"], _META))
            if conv is not None:
                items.append((_conversation(conv), _member(row)))
        nxt = None
        if more and page:
            _, at, cid = str(page[-1]["gsi1sk"]).split("#", 2)
            nxt = encode_cursor("conversations", [at, cid])
        return Page(items, nxt)

    def _batch_get(self, keys: Sequence[Key]) -> dict[Key, Item]:
        """The items found, by key (at most 100 keys: one ``BatchGetItem``)."""
        wanted = [_to_wire({"pk": pk, "sk": sk}) for pk, sk in dict.fromkeys(keys)]
        found: dict[Key, Item] = {}
        request: dict[str, Any] = {self._table: {"Keys": wanted, "ConsistentRead": True}}
        while wanted and request:
            out = self._client.batch_get_item(RequestItems=request)
            for raw in out.get("Responses", {}).get(self._table, []):
                item = _from_wire(raw)
                found[(item["pk"], item["sk"])] = item
            request = out.get("UnprocessedKeys") or {}
        return found

    # --- messages
    def add_message(self, message: Message) -> None:
        key = (_conv_pk(message.conversation_id), f"{_MSG}{message.id}")
        # (a duplicate id fails the put's condition at commit; ids are ULIDs)
        if self._get((key[0], _META)) is None:
            raise KeyError(f"no conversation {message.conversation_id}")
        if message.client_message_id is not None:
            self._claim(
                _unique_key("CMID", message.author_id, message.client_message_id),
                f"{message.conversation_id}#{message.id}",
                read_first=False,
                conversation_id=message.conversation_id,
                message_id=message.id,
            )
        self._put(_message_item(message), "attribute_not_exists(pk)")

    def save_message(self, message: Message) -> None:
        key = (_conv_pk(message.conversation_id), f"{_MSG}{message.id}")
        if self._get(key) is None:
            raise KeyError(f"no message {message.id} to save")
        self._put(_message_item(message))

    def record(self, events: Sequence[Event]) -> None:
        from lwm_core.ids import new_id
        from lwm_core.outbox import outbox_item

        now = int(time.time())
        for event in events:
            self._put(outbox_item(EVENT_SOURCE, event, event_id=new_id(), now_s=now))

    def get_message(self, conversation_id: str, message_id: str) -> Message | None:
        item = self._get((_conv_pk(conversation_id), f"{_MSG}{message_id}"))
        return _message(item) if item else None

    def find_by_client_id(self, author_id: str, client_message_id: str) -> Message | None:
        item = self._get(_unique_key("CMID", author_id, client_message_id))
        if item is None:
            return None
        return self.get_message(str(item["conversation_id"]), str(item["message_id"]))

    def _messages(
        self, conversation_id: str, lo: str, hi: str, forward: bool, limit: int, **kw: Any
    ) -> Iterator[Item]:
        return self._query(
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues=_to_wire(
                {":pk": _conv_pk(conversation_id), ":lo": lo, ":hi": hi, **kw.pop("values", {})}
            ),
            ScanIndexForward=forward,
            ConsistentRead=True,
            Limit=limit,
            **kw,
        )

    def messages_before(
        self, conversation_id: str, before_id: str | None, limit: int
    ) -> Sequence[Message]:
        if limit <= 0:
            return []
        hi = f"{_MSG}{before_id}" if before_id is not None else _MSG_END
        found: list[Message] = []
        for item in self._messages(conversation_id, _MSG, hi, False, limit + 1):
            if item["sk"] == hi:
                continue  # BETWEEN is inclusive; "before" is not
            found.append(_message(item))
            if len(found) == limit:
                break
        return found

    def messages_after(self, conversation_id: str, after_id: str, limit: int) -> Sequence[Message]:
        if limit <= 0:
            return []
        lo = f"{_MSG}{after_id}"
        found: list[Message] = []
        for item in self._messages(conversation_id, lo, _MSG_END, True, limit + 1):
            if item["sk"] == lo:
                continue
            found.append(_message(item))
            if len(found) == limit:
                break
        return found

    def count_unread(
        self, conversation_id: str, after_id: str | None, reader_id: str, cap: int
    ) -> int:
        lo = f"{_MSG}{after_id}" if after_id is not None else _MSG
        n = 0
        for item in self._messages(
            conversation_id,
            lo,
            _MSG_END,
            True,
            cap + 1,
            FilterExpression="author_id <> :me AND attribute_not_exists(deleted_at)",
            ProjectionExpression="sk",
            values={":me": reader_id},
        ):
            if item["sk"] == lo:
                continue
            n += 1
            if n >= cap:
                break
        return n


# --- the unit of work --------------------------------------------------------------------


class _ActivityRaceError(Exception):
    """Only a member's activity update (``gsi1sk``) failed its condition."""


class TransactionTooLargeError(Exception):
    """More conditioned writes than one ``TransactWriteItems`` holds (100)."""


class DynamoChatUow:
    """A unit of work over the chat table: writes land together at ``commit``.

    Usable as ``Deps(uow=DynamoChatUow)``; pass ``client``/``table_name`` to
    inject, otherwise the binding of :func:`bind_table` is used.
    """

    def __init__(self, client: Any | None = None, table_name: str | None = None) -> None:
        self._table = table_name or _binding.table_name
        if not self._table:
            raise RuntimeError("call bind_table() before using the chat store")
        self._client = client or _client(_binding.region, _binding.endpoint)
        self.writes: dict[Key, _Write] = {}
        self.reads: dict[Key, Item | None] = {}  # what this unit of work read, by key
        self.member_reads: dict[str, dict[Key, Item]] = {}  # member listings, by conversation
        self._activity: dict[Key, str] = {}
        self._active = False
        self.committed = False

    # --- buffer (used by the repository)
    def stage(self, key: Key, item: Item | None, condition: str | None, values: Any) -> None:
        """Record an item's new state; the first write's condition (on the base) stays."""
        if key in self.writes:
            self.writes[key].item = item
        else:
            self.writes[key] = _Write(item, condition, dict(values))
        # a pending move of this member's activity folds into the one write of the item
        activity = self._activity.pop(key, None)
        if item is not None and activity is not None:
            item["gsi1sk"] = max(activity, str(item.get("gsi1sk", "")))

    def move_activity(self, member_key: Key, activity: str) -> None:
        """Move a member's place in its user's conversation list (``gsi1sk``)."""
        staged = self.writes.get(member_key)
        if staged is not None:
            if staged.item is not None:
                staged.item["gsi1sk"] = activity
            return
        self._activity[member_key] = activity

    @property
    def chat(self) -> DynamoChatRepository:
        if not self._active:
            raise RuntimeError("use the unit of work inside `with uow:`")
        return DynamoChatRepository(self._client, self._table, self)

    def __enter__(self) -> Self:
        self.writes, self.reads, self._activity = {}, {}, {}
        self.member_reads = {}
        self._active, self.committed = True, False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed is dropped with the buffer.
        self.writes, self.reads, self._activity = {}, {}, {}
        self.member_reads = {}
        self._active = False

    # --- commit
    def _operation(self, key: Key, w: _Write) -> dict[str, Any]:
        op: dict[str, Any] = {"TableName": self._table}
        if w.item is None:
            op["Key"] = _to_wire({"pk": key[0], "sk": key[1]})
        else:
            op["Item"] = _to_wire(w.item)
        if w.condition:
            op["ConditionExpression"] = w.condition
            if "#ref" in w.condition:
                op["ExpressionAttributeNames"] = {"#ref": "ref"}
            if w.values:
                op["ExpressionAttributeValues"] = _to_wire(
                    {f":{k}": v for k, v in w.values.items()}
                )
        return {"Delete" if w.item is None else "Put": op}

    def _activity_operation(self, key: Key, activity: str) -> dict[str, Any]:
        return {
            "Update": {
                "TableName": self._table,
                "Key": _to_wire({"pk": key[0], "sk": key[1]}),
                "UpdateExpression": "SET gsi1sk = :a",
                # a member who left meanwhile is not recreated; the order only moves forward
                "ConditionExpression": "attribute_exists(pk) AND gsi1sk < :a",
                "ExpressionAttributeValues": _to_wire({":a": activity}),
            }
        }

    def _transact(self, ops: list[tuple[Key, dict[str, Any]]]) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.transact_write_items(TransactItems=[op for _, op in ops])
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "TransactionCanceledException":
                raise
            reasons = e.response.get("CancellationReasons") or []
            failed = [
                (key, op)
                for (key, op), reason in zip(ops, reasons, strict=False)
                if reason.get("Code") == "ConditionalCheckFailed"
            ]
            for key, _ in failed:
                if key[1] == _UNIQUE_SK:
                    raise _unique_error(key[0]) from e
                if key[1] == _ROSTER:
                    raise errors.MembershipChangedError(
                        "the conversation's members changed meanwhile; try again"
                    ) from e
            if failed and all("Update" in op for _, op in failed):
                raise _ActivityRaceError() from e
            raise

    def commit(self) -> None:
        """Apply every buffered write in one transaction (see the module's limits).

        Raises:
            DirectConversationExistsError, RequestPendingError, DuplicateClientMessageError:
                a uniqueness item was taken by another writer meanwhile.
            TransactionTooLargeError: more than 100 conditioned writes.
        """
        if not self._active:
            raise RuntimeError("commit inside `with uow:`")
        primary = [(k, self._operation(k, w)) for k, w in self.writes.items()]
        activity = [(k, self._activity_operation(k, a)) for k, a in self._activity.items()]
        conditioned = [(k, op) for k, op in primary if self.writes[k].condition]
        if len(conditioned) > MAX_TRANSACTION_ITEMS:
            raise TransactionTooLargeError("more than 100 conditioned writes in one commit")
        plain = [(k, op) for k, op in primary if not self.writes[k].condition]
        if len(primary) + len(activity) <= MAX_TRANSACTION_ITEMS:
            batches, later = [conditioned + plain + activity], []
        else:
            ordered = conditioned + plain
            batches = [
                ordered[i : i + MAX_TRANSACTION_ITEMS]
                for i in range(0, len(ordered), MAX_TRANSACTION_ITEMS)
            ]
            later = activity
        try:
            for batch in batches:
                if batch:
                    self._transact(batch)
        except _ActivityRaceError:
            # a member left, or a later post moved the order already: commit without
            # the activity updates, then move what still moves forward
            self._transact(conditioned + plain)
            later = activity
        self._apply_activity_later(later)
        self.reads.update({k: w.item for k, w in self.writes.items()})
        for (pk, sk), w in self.writes.items():  # keep cached listings in step
            if sk.startswith(_MEMBER) and pk in self.member_reads:
                if w.item is None:
                    self.member_reads[pk].pop((pk, sk), None)
                else:
                    self.member_reads[pk][(pk, sk)] = w.item
        self.writes, self._activity = {}, {}
        self.committed = True

    def _apply_activity_later(self, ops: list[tuple[Key, dict[str, Any]]]) -> None:
        from botocore.exceptions import ClientError

        for _, op in ops:
            try:
                self._client.update_item(**op["Update"])
            except ClientError as e:
                if e.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                    raise


def claim_activity_move(
    conversation_id: str,
    now: datetime,
    client: Any | None = None,
    table_name: str | None = None,
) -> bool:
    """Whether the members' lists of this conversation are due to move (and claim it).

    True at most once per :data:`ACTIVITY_INTERVAL_S` per conversation (a conditional
    write on the conversation item); a claim whose move then fails is retried by the
    stream with the same record, which claims again once the interval is over. A
    sandbox remembers its own claims: while one holds, the write that would be refused
    is not sent (one call fewer per message in a busy group).
    """
    from botocore.exceptions import ClientError

    dynamo = client or _client(_binding.region, _binding.endpoint)
    table = table_name or _binding.table_name
    epoch = int(now.timestamp())
    claimed = _claims.get((table, conversation_id))
    if claimed is not None and claimed > epoch - ACTIVITY_INTERVAL_S:
        return False  # the stored claim is at least this recent: the condition would fail
    try:
        dynamo.update_item(
            TableName=table,
            Key=_to_wire({"pk": _conv_pk(conversation_id), "sk": _META}),
            UpdateExpression="SET activity_moved_at = :now",
            ConditionExpression=(
                "attribute_exists(pk) AND (attribute_not_exists(activity_moved_at)"
                " OR activity_moved_at <= :due)"
            ),
            ExpressionAttributeValues=_to_wire(
                {":now": epoch, ":due": epoch - ACTIVITY_INTERVAL_S}
            ),
        )
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise
        return False
    if len(_claims) >= _CLAIMS_KEPT:
        _claims.clear()
    _claims[(table, conversation_id)] = epoch
    return True


_CLAIMS_KEPT = 10_000
_claims: dict[tuple[str, str], int] = {}  # (table, conversation) -> this sandbox's last claim


def move_activity(
    conversation_id: str,
    member_ids: Sequence[str],
    at: datetime,
    client: Any | None = None,
    table_name: str | None = None,
) -> int:
    """Move members' place in their conversation lists to ``at`` (forward only), concurrently.

    For conversations above :data:`INLINE_ACTIVITY_LIMIT` members, called by the
    outbox relay for each ``message.posted``; members who left meanwhile are not
    recreated. Returns how many moved.
    """
    from concurrent.futures import ThreadPoolExecutor

    from botocore.exceptions import ClientError

    table = table_name or _binding.table_name
    dynamo = client or _client(_binding.region, _binding.endpoint)
    activity = _activity(at, conversation_id)

    def move(user_id: str) -> bool:
        try:
            dynamo.update_item(
                TableName=table,
                Key=_to_wire({"pk": _conv_pk(conversation_id), "sk": f"{_MEMBER}{user_id}"}),
                UpdateExpression="SET gsi1sk = :a",
                ConditionExpression="attribute_exists(pk) AND gsi1sk < :a",
                ExpressionAttributeValues=_to_wire({":a": activity}),
            )
        except ClientError as e:
            if e.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            return False
        return True

    with ThreadPoolExecutor(ACTIVITY_PARALLELISM) as pool:
        return sum(pool.map(move, member_ids))
