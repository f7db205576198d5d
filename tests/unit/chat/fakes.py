"""In-memory fakes of the chat ports (``functions.chat.domain``).

They keep the semantics the DynamoDB adapter will have, so logic tests
exercise the same rules:

* objects go in and out as copies (a change not saved is lost);
* a unit of work reads a snapshot and writes nothing until ``commit``;
  uncommitted work is discarded on exit;
* ``commit`` applies item-level changes (like ``TransactWriteItems``), so two
  units of work touching different items both land;
* uniqueness is a condition of the write, checked when written *and* again at
  commit against what others committed meanwhile: one direct conversation per
  pair, one pending request per (mentee, mentor), one message per
  (author, client_message_id);
* listings are ordered like the table's sort keys and GSIs (message id;
  ``last_activity_at``; request id) and page with opaque cursors.

``FakeUowFactory.before_next_commit`` lets a test run a competing writer just
before a commit, to exercise races. ``test_fakes.py`` pins these semantics.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Self

from functions.chat import errors, logic
from functions.chat.domain import (
    Block,
    ChatSettings,
    Conversation,
    ConversationKind,
    Event,
    Member,
    MentorshipRequest,
    Message,
    RequestBox,
    RequestStatus,
    pair_key,
)
from lwm_core.connections import Connection
from lwm_core.pagination import Page, decode_cursor, encode_cursor
from lwm_core.push import PushResult


@dataclass
class InMemoryChatDatabase:
    """The committed items, shared by every unit of work of one test (one dict per item type)."""

    settings: dict[str, ChatSettings] = field(default_factory=dict)
    blocks: dict[tuple[str, str], Block] = field(default_factory=dict)
    requests: dict[str, MentorshipRequest] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    members: dict[tuple[str, str], Member] = field(default_factory=dict)
    messages: dict[tuple[str, str], Message] = field(default_factory=dict)
    # uniqueness items, as the adapter writes them with attribute_not_exists
    pending: dict[tuple[str, str], str] = field(default_factory=dict)
    direct: dict[str, str] = field(default_factory=dict)
    client_ids: dict[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    # the outbox: events committed with their change, by event id (commit order)
    outbox: dict[int, Event] = field(default_factory=dict)

    def snapshot(self) -> InMemoryChatDatabase:
        return copy.deepcopy(self)

    def tables(self) -> dict[str, dict[Any, Any]]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_event_ids = itertools.count(1)  # outbox keys, unique across units of work

_UNIQUE: dict[str, Callable[[], Exception]] = {
    "pending": lambda: errors.RequestPendingError("a request to this mentor is already pending"),
    "direct": lambda: errors.DirectConversationExistsError("the pair has a direct conversation"),
    "client_ids": lambda: errors.DuplicateClientMessageError("client_message_id already used"),
}


class InMemoryChatRepository:
    """``ChatRepository`` over one working copy of :class:`InMemoryChatDatabase`."""

    def __init__(self, data: InMemoryChatDatabase) -> None:
        self._d = data

    def record(self, events: Sequence[Event]) -> None:
        for event in events:
            self._d.outbox[next(_event_ids)] = event

    # --- settings and blocks
    def get_settings(self, user_id: str) -> ChatSettings | None:
        return self._d.settings.get(user_id)

    def put_settings(self, settings: ChatSettings) -> None:
        self._d.settings[settings.user_id] = settings

    def get_block(self, blocker_id: str, blocked_id: str) -> Block | None:
        return self._d.blocks.get((blocker_id, blocked_id))

    def put_block(self, block: Block) -> None:
        self._d.blocks[(block.blocker_id, block.blocked_id)] = block

    def delete_block(self, blocker_id: str, blocked_id: str) -> None:
        self._d.blocks.pop((blocker_id, blocked_id), None)

    def list_blocks(self, blocker_id: str) -> Sequence[Block]:
        return sorted(
            (b for (who, _), b in self._d.blocks.items() if who == blocker_id),
            key=lambda b: b.blocked_id,
        )

    # --- requests
    def add_request(self, request: MentorshipRequest) -> None:
        if request.id in self._d.requests:
            raise ValueError(f"duplicate request id {request.id}")
        if request.status is not RequestStatus.PENDING:
            raise ValueError("a new request is pending")
        pair = (request.mentee_id, request.mentor_id)
        if pair in self._d.pending:
            raise _UNIQUE["pending"]()
        self._d.pending[pair] = request.id
        self._d.requests[request.id] = copy.deepcopy(request)

    def save_request(self, request: MentorshipRequest) -> None:
        if request.id not in self._d.requests:
            raise KeyError(f"no request {request.id} to save")
        pair = (request.mentee_id, request.mentor_id)
        if request.status is not RequestStatus.PENDING and self._d.pending.get(pair) == request.id:
            del self._d.pending[pair]
        self._d.requests[request.id] = copy.deepcopy(request)

    def get_request(self, request_id: str) -> MentorshipRequest | None:
        return copy.deepcopy(self._d.requests.get(request_id))

    def get_pending_request(self, mentee_id: str, mentor_id: str) -> MentorshipRequest | None:
        request_id = self._d.pending.get((mentee_id, mentor_id))
        return self.get_request(request_id) if request_id else None

    def list_requests(
        self, user_id: str, box: RequestBox, limit: int, cursor: str | None
    ) -> Page[MentorshipRequest]:
        scope = f"requests:{box.value}"
        attr = "mentor_id" if box is RequestBox.INCOMING else "mentee_id"
        found = sorted(
            (r for r in self._d.requests.values() if getattr(r, attr) == user_id),
            key=lambda r: r.id,
            reverse=True,
        )
        if cursor:
            (last,) = decode_cursor(cursor, scope, 1)
            found = [r for r in found if r.id < str(last)]
        page, more = found[:limit], len(found) > limit
        nxt = encode_cursor(scope, [page[-1].id]) if more else None
        return Page([copy.deepcopy(r) for r in page], nxt)

    # --- conversations and members
    def add_conversation(self, conversation: Conversation, members: Sequence[Member]) -> None:
        if conversation.id in self._d.conversations:
            raise ValueError(f"duplicate conversation id {conversation.id}")
        if conversation.kind is ConversationKind.DIRECT:
            users = sorted(m.user_id for m in members)
            if len(users) != 2 or conversation.direct_key != pair_key(*users):
                raise ValueError("a direct conversation has exactly its pair as members")
            if conversation.direct_key in self._d.direct:
                raise _UNIQUE["direct"]()
            self._d.direct[conversation.direct_key] = conversation.id
        self._d.conversations[conversation.id] = copy.deepcopy(conversation)
        for m in members:
            self.put_member(m)

    def save_conversation(self, conversation: Conversation) -> None:
        if conversation.id not in self._d.conversations:
            raise KeyError(f"no conversation {conversation.id} to save")
        self._d.conversations[conversation.id] = copy.deepcopy(conversation)

    def get_conversation(self, conversation_id: str) -> Conversation | None:
        return copy.deepcopy(self._d.conversations.get(conversation_id))

    def find_direct(self, a: str, b: str) -> Conversation | None:
        conversation_id = self._d.direct.get(pair_key(a, b))
        return self.get_conversation(conversation_id) if conversation_id else None

    def get_member(self, conversation_id: str, user_id: str) -> Member | None:
        return copy.deepcopy(self._d.members.get((conversation_id, user_id)))

    def list_members(self, conversation_id: str) -> Sequence[Member]:
        found = [m for (cid, _), m in self._d.members.items() if cid == conversation_id]
        return [copy.deepcopy(m) for m in sorted(found, key=lambda m: (m.joined_at, m.user_id))]

    def member_ids(self, conversation_id: str) -> tuple[str, ...]:
        return tuple(m.user_id for m in self.list_members(conversation_id))

    def prefetch_membership(self, conversation_id: str, user_id: str) -> None:
        return None

    def put_member(self, member: Member) -> None:
        if member.conversation_id not in self._d.conversations:
            raise KeyError(f"no conversation {member.conversation_id}")
        self._d.members[(member.conversation_id, member.user_id)] = copy.deepcopy(member)

    def delete_member(self, conversation_id: str, user_id: str) -> None:
        self._d.members.pop((conversation_id, user_id), None)

    def list_conversations(
        self, user_id: str, limit: int, cursor: str | None
    ) -> Page[tuple[Conversation, Member]]:
        def key(c: Conversation) -> tuple[str, str]:
            return (c.last_activity_at.isoformat(), c.id)

        mine = [
            (self._d.conversations[cid], m)
            for (cid, uid), m in self._d.members.items()
            if uid == user_id
        ]
        mine.sort(key=lambda cm: key(cm[0]), reverse=True)
        if cursor:
            at, cid = decode_cursor(cursor, "conversations", 2)
            mine = [cm for cm in mine if key(cm[0]) < (str(at), str(cid))]
        page, more = mine[:limit], len(mine) > limit
        nxt = encode_cursor("conversations", list(key(page[-1][0]))) if more else None
        return Page([copy.deepcopy(cm) for cm in page], nxt)

    # --- messages
    def add_message(self, message: Message) -> None:
        k = (message.conversation_id, message.id)
        if k in self._d.messages:
            raise ValueError(f"duplicate message id {message.id}")
        if message.conversation_id not in self._d.conversations:
            raise KeyError(f"no conversation {message.conversation_id}")
        if message.client_message_id is not None:
            ck = (message.author_id, message.client_message_id)
            if ck in self._d.client_ids:
                raise _UNIQUE["client_ids"]()
            self._d.client_ids[ck] = k
        self._d.messages[k] = copy.deepcopy(message)

    def save_message(self, message: Message) -> None:
        k = (message.conversation_id, message.id)
        if k not in self._d.messages:
            raise KeyError(f"no message {message.id} to save")
        self._d.messages[k] = copy.deepcopy(message)

    def get_message(self, conversation_id: str, message_id: str) -> Message | None:
        return copy.deepcopy(self._d.messages.get((conversation_id, message_id)))

    def find_by_client_id(self, author_id: str, client_message_id: str) -> Message | None:
        k = self._d.client_ids.get((author_id, client_message_id))
        return copy.deepcopy(self._d.messages.get(k)) if k else None

    def _of(self, conversation_id: str) -> list[Message]:
        return sorted(
            (m for (cid, _), m in self._d.messages.items() if cid == conversation_id),
            key=lambda m: m.id,
        )

    def messages_before(
        self, conversation_id: str, before_id: str | None, limit: int
    ) -> Sequence[Message]:
        found = [m for m in self._of(conversation_id) if before_id is None or m.id < before_id]
        return [copy.deepcopy(m) for m in reversed(found[-limit:])] if limit else []

    def messages_after(self, conversation_id: str, after_id: str, limit: int) -> Sequence[Message]:
        found = [m for m in self._of(conversation_id) if m.id > after_id]
        return [copy.deepcopy(m) for m in found[:limit]]

    def count_unread(
        self, conversation_id: str, after_id: str | None, reader_id: str, cap: int
    ) -> int:
        n = sum(
            1
            for m in self._of(conversation_id)
            if (after_id is None or m.id > after_id) and m.author_id != reader_id and not m.deleted
        )
        return min(n, cap)


class FakeUow:
    """A transaction over an :class:`InMemoryChatDatabase`: nothing lands before ``commit``."""

    def __init__(self, factory: FakeUowFactory) -> None:
        self._factory = factory
        self._base: InMemoryChatDatabase | None = None
        self._work: InMemoryChatDatabase | None = None
        self.committed = False

    @property
    def chat(self) -> InMemoryChatRepository:
        if self._work is None:
            raise RuntimeError("use the unit of work inside `with uow:`")
        return InMemoryChatRepository(self._work)

    def __enter__(self) -> Self:
        self._base = self._factory.db.snapshot()
        self._work = self._base.snapshot()
        self.committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever was not committed is rolled back: the working copy is dropped.
        self._base = self._work = None

    def commit(self) -> None:
        assert self._base is not None and self._work is not None
        if (competitor := self._factory.pop_competitor()) is not None:
            competitor()
        db = self._factory.db
        base, work, live = self._base.tables(), self._work.tables(), db.tables()
        # Conditions first, all-or-nothing: a key this transaction claims must be free.
        for name, make_error in _UNIQUE.items():
            for k, v in work[name].items():
                if k not in base[name] and k in live[name] and live[name][k] != v:
                    raise make_error()
        for name, table in work.items():
            for k in base[name].keys() | table.keys():
                if k not in table:
                    live[name].pop(k, None)
                elif k not in base[name] or table[k] != base[name][k]:
                    live[name][k] = copy.deepcopy(table[k])
        self._base = self._work.snapshot()
        self.committed = True
        self._factory.commits += 1


class FakeUowFactory:
    """``Deps.uow``: a new :class:`FakeUow` per call."""

    def __init__(self, db: InMemoryChatDatabase) -> None:
        self.db = db
        self.commits = 0
        self._competitors: list[Callable[[], object]] = []

    def __call__(self) -> FakeUow:
        return FakeUow(self)

    def before_next_commit(self, competitor: Callable[[], object]) -> None:
        """Run ``competitor`` (a concurrent writer) just before the next commit."""
        self._competitors.append(competitor)

    def pop_competitor(self) -> Callable[[], object] | None:
        return self._competitors.pop(0) if self._competitors else None


class FakeClock:
    """A clock that moves only when told to (UTC)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


class SequentialIds:
    """Deterministic, strictly increasing 26-character ids (ULID-shaped)."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.n:026d}"


@dataclass
class FakeWorld:
    """The chat logic wired to fakes for one test."""

    db: InMemoryChatDatabase = field(default_factory=InMemoryChatDatabase)
    clock: FakeClock = field(default_factory=FakeClock)
    ids: SequentialIds = field(default_factory=SequentialIds)
    config: logic.Config = field(default_factory=logic.Config)
    uows: FakeUowFactory = field(init=False)
    attachments: FakeAttachmentStore = field(init=False)
    deps: logic.Deps = field(init=False)

    def __post_init__(self) -> None:
        self.uows = FakeUowFactory(self.db)
        self.attachments = FakeAttachmentStore()
        self.deps = logic.Deps(
            uow=self.uows,
            attachments=self.attachments,
            clock=self.clock,
            ids=self.ids,
            config=self.config,
        )

    def member(self, conversation_id: str, user_id: str) -> Member | None:
        """The committed membership of ``user_id``."""
        return copy.deepcopy(self.db.members.get((conversation_id, user_id)))

    def messages(self, conversation_id: str) -> list[Message]:
        """The committed messages of a conversation, in id order."""
        return sorted(
            (m for (cid, _), m in self.db.messages.items() if cid == conversation_id),
            key=lambda m: m.id,
        )


class FakePusher:
    """``lwm_core.push.Pusher`` over a map of who is connected: records every frame sent.

    ``devices``: user id -> connection ids (absent users are offline).
    """

    def __init__(self, devices: dict[str, list[str]] | None = None) -> None:
        self.devices = devices if devices is not None else {}
        self.sent: list[tuple[str, dict[str, Any]]] = []  # (connection id, frame)
        self.lookups: list[list[str]] = []  # audiences read ahead (look_up)
        self.known_used = 0  # pushes that used a read-ahead

    def to_connection(self, connection_id: str, payload: Any) -> bool:
        self.sent.append((connection_id, payload))
        return True

    def look_up(self, user_ids: Any) -> Future[list[Connection]]:
        """The users' connections, as ``Pusher.look_up`` reads them ahead of a push."""
        self.lookups.append(list(user_ids))
        found: Future[list[Connection]] = Future()
        found.set_result(
            [Connection(c, u, 0) for u in dict.fromkeys(user_ids) for c in self.devices.get(u, [])]
        )
        return found

    def to_users(
        self, user_ids: Any, payload: Any, *, exclude: Any = (), known: Any = None
    ) -> PushResult:
        if known is not None:
            self.known_used += 1
        users = list(dict.fromkeys(user_ids))
        result = PushResult()
        for user in users:
            for connection in self.devices.get(user, []):
                if connection not in set(exclude):
                    self.sent.append((connection, payload))
                    result.delivered.append(connection)
        reached = {u for u in users if set(self.devices.get(u, [])) - set(exclude)}
        result.unreachable = set(users) - reached
        return result

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        return [f for c, f in self.sent if c == connection_id]


class FakeAttachmentStore:
    """``AttachmentStore`` in memory: ``upload`` plays the client's POST to the form."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[int, str]] = {}
        self.forms: dict[str, tuple[str, int]] = {}  # key -> (content type, size) allowed

    def upload_form(
        self, key: str, content_type: str, size: int, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        self.forms[key] = (content_type, size)
        return "https://uploads.test/", {"key": key, "Content-Type": content_type}

    def upload(self, key: str, data: bytes, content_type: str) -> None:
        """What S3 does with a POST to the form: refuse anything the policy does not allow."""
        if self.forms.get(key) != (content_type, len(data)):
            raise PermissionError("the form's policy refuses this upload")
        self.objects[key] = (len(data), content_type)

    def describe(self, key: str) -> tuple[int, str] | None:
        return self.objects.get(key)

    def download_url(self, key: str, filename: str | None, expires_s: int) -> str:
        return f"https://downloads.test/{key}?expires={expires_s}"

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self.objects.pop(key, None)
