"""Business rules of the chat service: requests, conversations, messages, receipts, blocks.

Pure and typed: every function receives its collaborators (``Deps``: a unit of
work factory, a clock and an id source) and values; it never reads the
environment, imports boto3 or publishes anything. Functions that change state
return the domain events to publish *after* the commit (``Outcome.events``).

Choices where the product issue is silent:

* **Text contract.** Stored text is an HTML-safe fragment without markup:
  the trimmed input goes through ``nh3.clean(text, tags=set())``, so tags are
  stripped (``<script>``/``<style>`` with their content) and ``<``, ``>``, ``&``
  are entity-escaped. Clients may insert it as HTML; plain-text clients
  unescape entities. Limits (1..4000 characters, no NUL) apply to the trimmed
  input; text that is empty after cleaning is rejected. A message with
  attachments may have empty text.
* **Existence does not leak.** A non-member gets ``conversation_not_found``
  (404), the same as for a missing conversation; a non-party to a request gets
  ``request_not_found``.
* **Expiry is lazy.** A pending request past ``expires_at`` reads as
  ``expired`` everywhere and frees the pair for a new request; it is written
  as expired when the mentee sends the next one (a scheduled sweep in the data
  layer may do it earlier).
  ``expires_at`` is fixed when the request is sent from the mentor's
  ``request_ttl_days`` (1..30, default 7).
* **Requests.** Refused when the pair already shares a direct conversation
  (``already_connected``) or is blocked either way (``blocked``); accepting is
  refused while blocked too. Accepting posts the request text into the direct
  conversation as the mentee's message with client id ``request:<id>`` (a
  form clients cannot send: their ids are ``[A-Za-z0-9_-]{1,64}``), so it
  can exist once only (the store's client-id uniqueness rule).
* **Direct conversations** open when the other user is a mentor open to all,
  when the caller passes ``allow_direct`` (a shared booking, checked by the
  caller), or by accepting a request; an existing one is returned as is.
  Blocks are enforced in direct conversations only, not in groups.
* **Groups.** Up to ``max_group_members`` members including the owner. New
  members may read the history; their unread count starts at zero. A direct
  conversation cannot be left. When the last member leaves, the group stays
  stored but is unreachable.
* **Messages.** Sending counts as reading: the author's read (and delivered)
  receipt moves to their new message. Replies must target a live message of
  the same conversation. Edits and deletes are the author's only; a deleted
  message keeps its id and place with text, attachments and reactions cleared.
* **Unread** counts messages after the member's last read id, not theirs and
  not deleted, up to ``unread_cap`` (100: a client shows "99+" above 99).
* **History.** ``before`` (or neither: the latest) returns newest first,
  ``after`` oldest first; message ids are the cursors (see ``MessagePage``).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Generic, ParamSpec, TypeVar

from functions.chat import errors
from functions.chat.domain import (
    Attachment,
    AttachmentStore,
    Block,
    ChatRepository,
    ChatSettings,
    Clock,
    Conversation,
    ConversationKind,
    DirectReason,
    Event,
    Ids,
    Member,
    MemberRole,
    MembershipChanged,
    MentorshipRequest,
    Message,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    MessagePreview,
    MessageUndelivered,
    ReactionToggled,
    ReceiptMoved,
    RequestAnswered,
    RequestBox,
    RequestSent,
    RequestStatus,
    Uow,
    pair_key,
)
from lwm_core.errors import ProblemError
from lwm_core.ids import UlidIds
from lwm_core.pagination import Page

T = TypeVar("T")
P = ParamSpec("P")
MEMBERSHIP_TRIES = 3  # a membership change refused by a concurrent one runs again

DEFAULT_REACTIONS = frozenset({"👍", "❤️", "😂", "😮", "😢", "🙏", "🎉", "👀", "🔥", "✅"})
DEFAULT_CONTENT_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain"}
)
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_KEY_TAIL = re.compile(r"[A-Za-z0-9._-]{1,200}")
_ZWJ = "\u200d"
_VARIATION = frozenset({"\ufe0e", "\ufe0f"})


@dataclass(frozen=True)
class Config:
    """Limits of the chat logic (from settings)."""

    max_text: int = 4000
    max_reason: int = 500
    max_title: int = 100
    preview_len: int = 140
    max_group_members: int = 1000  # a cohort; fan-out reads members in pages of 100
    max_attachments: int = 5
    max_attachment_bytes: int = 25 * 1024 * 1024
    content_types: frozenset[str] = DEFAULT_CONTENT_TYPES
    reactions: frozenset[str] = DEFAULT_REACTIONS
    max_reaction_len: int = 16
    default_ttl_days: int = 7
    max_ttl_days: int = 30
    unread_cap: int = 100
    max_page: int = 100
    attachment_prefix: str = "chat"
    upload_expiry_s: int = 15 * 60
    download_expiry_s: int = 5 * 60


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Deps:
    """Collaborators of the chat logic, built once per sandbox (fakes in unit tests)."""

    uow: Callable[[], AbstractContextManager[Uow]]
    attachments: AttachmentStore | None = None  # None: attachments are refused
    clock: Clock = utc_now
    ids: Ids = field(default_factory=UlidIds)
    config: Config = field(default_factory=Config)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A result and the events to publish once it is committed."""

    value: T
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class SendResult:
    """A sent message; ``created`` is False when a resend returned the stored one."""

    message: Message
    created: bool
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class Accepted:
    """An accepted request, its direct conversation and the first message in it."""

    request: MentorshipRequest
    conversation: Conversation
    message: Message
    events: tuple[Event, ...] = ()


@dataclass(frozen=True)
class ConversationSummary:
    """One line of a user's conversation list."""

    conversation: Conversation
    role: MemberRole
    unread: int
    last_message: MessagePreview | None


@dataclass(frozen=True)
class MessagePage:
    """A page of history.

    ``direction`` is ``"before"`` (newest first) or ``"after"`` (oldest first).
    ``next_cursor`` is the message id to pass again with the same direction:
    for ``before`` the oldest id returned, or None when nothing older is left;
    for ``after`` the newest id returned (or the one given when nothing is new),
    so a reconnecting client keeps calling ``after=next_cursor`` until
    ``has_more`` is False.
    """

    items: list[Message]
    direction: str
    has_more: bool
    next_cursor: str | None


# --- validation ------------------------------------------------------------------------


def clean_text(raw: str, max_len: int, *, allow_empty: bool = False) -> str:
    """Trim, check and sanitize user text into an HTML-safe fragment without tags.

    Raises:
        InvalidMessageError: NUL, too long, or empty (unless ``allow_empty``).
    """
    import nh3

    text = raw.strip()
    if "\x00" in text:
        raise errors.InvalidMessageError("text must not contain NUL characters")
    if len(text) > max_len:
        raise errors.InvalidMessageError(f"text is longer than {max_len} characters")
    cleaned = nh3.clean(text, tags=set()).strip() if text else ""
    if not cleaned and not allow_empty:
        raise errors.InvalidMessageError("text is empty")
    return cleaned


def is_single_emoji(value: str, max_len: int = 16) -> bool:
    """One emoji grapheme: a symbol with modifiers, a ZWJ sequence, a flag or a keycap."""
    if not value or len(value) > max_len:
        return False
    if len(value) == 2 and all(0x1F1E6 <= ord(ch) <= 0x1F1FF for ch in value):
        return True  # a regional-indicator flag
    if value[0] in "0123456789#*" and value[1:] in ("\u20e3", "\ufe0f\u20e3"):
        return True  # a keycap
    expect_base = True
    for ch in value:
        if expect_base:
            if unicodedata.category(ch) != "So":
                return False
            expect_base = False
        elif ch == _ZWJ:
            expect_base = True
        elif not (
            ch in _VARIATION
            or 0x1F3FB <= ord(ch) <= 0x1F3FF  # skin tones
            or 0xE0020 <= ord(ch) <= 0xE007F  # tag sequences (subdivision flags)
            or unicodedata.category(ch) in ("Mn", "Me")
        ):
            return False
    return not expect_base


def _check_client_id(client_message_id: str | None) -> None:
    if client_message_id is not None and not _CLIENT_ID.fullmatch(client_message_id):
        raise errors.InvalidMessageError("client_message_id must be 1..64 of [A-Za-z0-9_-]")


def _check_attachments(cfg: Config, conversation_id: str, items: Sequence[Attachment]) -> None:
    if len(items) > cfg.max_attachments:
        raise errors.InvalidAttachmentError(f"at most {cfg.max_attachments} attachments")
    prefix = f"{cfg.attachment_prefix}/{conversation_id}/"
    for a in items:
        if not a.key.startswith(prefix) or not _KEY_TAIL.fullmatch(a.key[len(prefix) :]):
            raise errors.InvalidAttachmentError(f"attachment key must be {prefix}<name>")
        if a.key[len(prefix) :] in (".", ".."):
            raise errors.InvalidAttachmentError("attachment key is not a file name")
        if a.content_type not in cfg.content_types:
            raise errors.InvalidAttachmentError(f"content type {a.content_type} is not allowed")
        if not 0 < a.size <= cfg.max_attachment_bytes:
            raise errors.InvalidAttachmentError(
                f"attachment size must be 1..{cfg.max_attachment_bytes} bytes"
            )
        if a.name is not None and (not a.name.strip() or len(a.name) > 255 or "\x00" in a.name):
            raise errors.InvalidAttachmentError("attachment name must be 1..255 characters")


def _check_uploaded(deps: Deps, items: Sequence[Attachment]) -> None:
    """Each attachment is in the store, with the size and type the message claims."""
    if not items:
        return
    if deps.attachments is None:
        raise errors.InvalidAttachmentError("attachments are not accepted here")
    for a in items:
        stored = deps.attachments.describe(a.key)
        if stored is None:
            raise errors.InvalidAttachmentError(f"{a.key} was not uploaded")
        if stored != (a.size, a.content_type):
            raise errors.InvalidAttachmentError(f"{a.key} is not the uploaded size and type")


def _check_page(cfg: Config, limit: int) -> None:
    if not 1 <= limit <= cfg.max_page:
        raise errors.InvalidPageError(f"limit must be 1..{cfg.max_page}")


# --- shared rules --------------------------------------------------------------------------


def _blocked_between(repo: ChatRepository, a: str, b: str) -> bool:
    return repo.get_block(a, b) is not None or repo.get_block(b, a) is not None


def _membership(repo: ChatRepository, conversation_id: str, user_id: str) -> Conversation:
    """The conversation if ``user_id`` is a member; 404 otherwise (existence does not leak)."""
    repo.prefetch_membership(conversation_id, user_id)
    conversation = repo.get_conversation(conversation_id)
    if conversation is None or repo.get_member(conversation_id, user_id) is None:
        raise errors.ConversationNotFoundError()
    return conversation


def _member_ids(repo: ChatRepository, conversation_id: str) -> tuple[str, ...]:
    return repo.member_ids(conversation_id)


def _retried_on_membership_race(change: Callable[P, T]) -> Callable[P, T]:
    """Run a membership change again when another one landed first (up to 3 tries)."""

    @functools.wraps(change)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        for _ in range(MEMBERSHIP_TRIES - 1):
            try:
                return change(*args, **kwargs)
            except errors.MembershipChangedError:
                continue
        return change(*args, **kwargs)

    return run


def _settings_or_default(repo: ChatRepository, cfg: Config, user_id: str) -> ChatSettings:
    found = repo.get_settings(user_id)
    return found or ChatSettings(user_id=user_id, request_ttl_days=cfg.default_ttl_days)


def _preview(cfg: Config, message: Message) -> MessagePreview:
    return MessagePreview(
        message_id=message.id,
        author_id=message.author_id,
        text=message.text[: cfg.preview_len],
        created_at=message.created_at,
        deleted=message.deleted,
        attachments=len(message.attachments),
    )


def _refresh_preview(cfg: Config, repo: ChatRepository, message: Message) -> None:
    """Keep the conversation's preview in step when its last message changes."""
    conversation = repo.get_conversation(message.conversation_id)
    last = conversation.last_message if conversation else None
    if conversation and last and last.message_id == message.id:
        conversation.last_message = _preview(cfg, message)
        repo.save_conversation(conversation)


def _post(
    deps: Deps,
    repo: ChatRepository,
    conversation: Conversation,
    *,
    author_id: str,
    text: str,
    client_message_id: str | None,
    reply_to: str | None = None,
    attachments: Sequence[Attachment] = (),
) -> tuple[Message, MessagePosted]:
    """Store a validated message, bump the conversation and the author's receipts."""
    now = deps.clock()
    message = Message(
        id=deps.ids(),
        conversation_id=conversation.id,
        author_id=author_id,
        text=text,
        created_at=now,
        client_message_id=client_message_id,
        reply_to=reply_to,
        attachments=list(attachments),
    )
    repo.add_message(message)
    conversation.last_activity_at = now
    conversation.last_message = _preview(deps.config, message)
    repo.save_conversation(conversation)
    author = repo.get_member(conversation.id, author_id)
    if author is not None:
        author.last_read_id = author.last_delivered_id = message.id
        repo.put_member(author)
    event = MessagePosted(
        conversation_id=conversation.id,
        message_id=message.id,
        author_id=author_id,
        member_ids=_member_ids(repo, conversation.id),
        created_at=now,
        preview=conversation.last_message.text,
        reply_to=reply_to,
    )
    return message, event


def _open_direct(
    deps: Deps, repo: ChatRepository, a: str, b: str, reason: DirectReason
) -> Conversation:
    """The pair's direct conversation, created if missing."""
    existing = repo.find_direct(a, b)
    if existing is not None:
        return existing
    now = deps.clock()
    conversation = Conversation(
        id=deps.ids(),
        kind=ConversationKind.DIRECT,
        created_at=now,
        last_activity_at=now,
        created_by=a,
        direct_key=pair_key(a, b),
        direct_reason=reason,
    )
    members = [Member(conversation.id, u, MemberRole.MEMBER, now) for u in (a, b)]
    repo.add_conversation(conversation, members)
    return conversation


def _retry_on_direct_race(action: Callable[[], T]) -> T:
    """Run ``action`` again once if another writer created the pair's direct conversation."""
    try:
        return action()
    except errors.DirectConversationExistsError:
        return action()


# --- settings and blocks ------------------------------------------------------------------


def _commit(uow: Uow, *events: Event) -> tuple[Event, ...]:
    """Commit, with ``events`` in the same transaction (the outbox the bus is fed from)."""
    uow.chat.record(events)
    uow.commit()
    return events


def get_settings(deps: Deps, user_id: str) -> ChatSettings:
    """A user's chat settings (defaults when never set)."""
    with deps.uow() as uow:
        return _settings_or_default(uow.chat, deps.config, user_id)


def update_settings(
    deps: Deps,
    user_id: str,
    *,
    open_to_all: bool | None = None,
    request_ttl_days: int | None = None,
) -> ChatSettings:
    """Change a mentor's chat settings; only the given fields change.

    Raises:
        InvalidSettingsError: ``request_ttl_days`` outside 1..``max_ttl_days``.
    """
    cfg = deps.config
    if request_ttl_days is not None and not 1 <= request_ttl_days <= cfg.max_ttl_days:
        raise errors.InvalidSettingsError(f"request_ttl_days must be 1..{cfg.max_ttl_days}")
    with deps.uow() as uow:
        current = _settings_or_default(uow.chat, cfg, user_id)
        updated = replace(
            current,
            open_to_all=current.open_to_all if open_to_all is None else open_to_all,
            request_ttl_days=current.request_ttl_days
            if request_ttl_days is None
            else request_ttl_days,
        )
        uow.chat.put_settings(updated)
        uow.commit()
        return updated


def block_user(deps: Deps, blocker_id: str, blocked_id: str) -> Block:
    """Block a user (idempotent: blocking again returns the existing block)."""
    if blocker_id == blocked_id:
        raise errors.SelfTargetError("you cannot block yourself")
    with deps.uow() as uow:
        existing = uow.chat.get_block(blocker_id, blocked_id)
        if existing is not None:
            return existing
        block = Block(blocker_id, blocked_id, deps.clock())
        uow.chat.put_block(block)
        uow.commit()
        return block


def unblock_user(deps: Deps, blocker_id: str, blocked_id: str) -> None:
    """Lift a block (idempotent)."""
    with deps.uow() as uow:
        uow.chat.delete_block(blocker_id, blocked_id)
        uow.commit()


def list_blocks(deps: Deps, blocker_id: str) -> list[Block]:
    """The users ``blocker_id`` blocked."""
    with deps.uow() as uow:
        return list(uow.chat.list_blocks(blocker_id))


# --- mentorship requests -----------------------------------------------------------------


def _expire_if_due(repo: ChatRepository, request: MentorshipRequest, now: datetime) -> None:
    if request.status is RequestStatus.PENDING and request.effective_status(now) is (
        RequestStatus.EXPIRED
    ):
        request.status = RequestStatus.EXPIRED
        repo.save_request(request)


def send_request(
    deps: Deps, mentee_id: str, mentor_id: str, text: str
) -> Outcome[MentorshipRequest]:
    """A mentee asks a mentor for mentorship with a first message.

    The caller (route) checks that ``mentor_id`` is a mentor.

    Raises:
        SelfTargetError, InvalidMessageError, BlockedError, AlreadyConnectedError,
        RequestPendingError.
    """
    if mentee_id == mentor_id:
        raise errors.SelfTargetError("you cannot send a request to yourself")
    cfg = deps.config
    body = clean_text(text, cfg.max_text)
    now = deps.clock()
    with deps.uow() as uow:
        repo = uow.chat
        if _blocked_between(repo, mentee_id, mentor_id):
            raise errors.BlockedError("you cannot send a request to this user")
        if repo.find_direct(mentee_id, mentor_id) is not None:
            raise errors.AlreadyConnectedError("you already have a conversation with this mentor")
        pending = repo.get_pending_request(mentee_id, mentor_id)
        if pending is not None:
            if pending.effective_status(now) is RequestStatus.PENDING:
                raise errors.RequestPendingError("a request to this mentor is already pending")
            _expire_if_due(repo, pending, now)
        ttl = _settings_or_default(repo, cfg, mentor_id).request_ttl_days
        request = MentorshipRequest(
            id=deps.ids(),
            mentee_id=mentee_id,
            mentor_id=mentor_id,
            text=body,
            created_at=now,
            expires_at=now + timedelta(days=ttl),
        )
        repo.add_request(request)
        events = _commit(uow, RequestSent(request.id, mentee_id, mentor_id, request.expires_at))
    return Outcome(request, events)


def _party_request(
    repo: ChatRepository, request_id: str, user_id: str, now: datetime
) -> MentorshipRequest:
    request = repo.get_request(request_id)
    if request is None or user_id not in (request.mentee_id, request.mentor_id):
        raise errors.RequestNotFoundError()
    if request.effective_status(now) is not RequestStatus.PENDING:
        raise errors.RequestNotPendingError(f"the request is {request.effective_status(now).value}")
    return request


def accept_request(deps: Deps, mentor_id: str, request_id: str) -> Accepted:
    """The mentor accepts: the direct conversation opens with the request's text in it.

    Raises:
        RequestNotFoundError, NotRequestRecipientError, RequestNotPendingError, BlockedError.
    """

    def attempt() -> Accepted:
        now = deps.clock()
        with deps.uow() as uow:
            repo = uow.chat
            request = _party_request(repo, request_id, mentor_id, now)
            if request.mentor_id != mentor_id:
                raise errors.NotRequestRecipientError("only the mentor may accept a request")
            if _blocked_between(repo, request.mentee_id, mentor_id):
                raise errors.BlockedError("you cannot accept a request from this user")
            conversation = _open_direct(
                deps, repo, request.mentee_id, mentor_id, DirectReason.ACCEPTED_REQUEST
            )
            message, posted = _post(
                deps,
                repo,
                conversation,
                author_id=request.mentee_id,
                text=request.text,
                client_message_id=f"request:{request.id}",
            )
            request.status = RequestStatus.ACCEPTED
            request.answered_at = now
            request.conversation_id = conversation.id
            repo.save_request(request)
            answered = RequestAnswered(
                request.id, request.mentee_id, mentor_id, RequestStatus.ACCEPTED, conversation.id
            )
            events = _commit(uow, answered, posted)
        return Accepted(request, conversation, message, events)

    return _retry_on_direct_race(attempt)


def decline_request(
    deps: Deps, mentor_id: str, request_id: str, reason: str | None = None
) -> Outcome[MentorshipRequest]:
    """The mentor declines, optionally saying why.

    Raises:
        RequestNotFoundError, NotRequestRecipientError, RequestNotPendingError, InvalidReasonError.
    """
    clean_reason: str | None = None
    if reason is not None:
        try:
            clean_reason = clean_text(reason, deps.config.max_reason, allow_empty=True) or None
        except errors.InvalidMessageError as e:
            raise errors.InvalidReasonError(e.detail) from e
    now = deps.clock()
    with deps.uow() as uow:
        request = _party_request(uow.chat, request_id, mentor_id, now)
        if request.mentor_id != mentor_id:
            raise errors.NotRequestRecipientError("only the mentor may decline a request")
        request.status = RequestStatus.DECLINED
        request.answered_at = now
        request.decline_reason = clean_reason
        uow.chat.save_request(request)
        event = RequestAnswered(request.id, request.mentee_id, mentor_id, RequestStatus.DECLINED)
        events = _commit(uow, event)
    return Outcome(request, events)


def withdraw_request(deps: Deps, mentee_id: str, request_id: str) -> Outcome[MentorshipRequest]:
    """The mentee withdraws a pending request.

    Raises:
        RequestNotFoundError, NotRequestSenderError, RequestNotPendingError.
    """
    now = deps.clock()
    with deps.uow() as uow:
        request = _party_request(uow.chat, request_id, mentee_id, now)
        if request.mentee_id != mentee_id:
            raise errors.NotRequestSenderError("only the mentee may withdraw a request")
        request.status = RequestStatus.WITHDRAWN
        request.answered_at = now
        uow.chat.save_request(request)
        event = RequestAnswered(request.id, mentee_id, request.mentor_id, RequestStatus.WITHDRAWN)
        events = _commit(uow, event)
    return Outcome(request, events)


def get_request(deps: Deps, user_id: str, request_id: str) -> MentorshipRequest:
    """One request, to its mentee or mentor, with its effective status."""
    now = deps.clock()
    with deps.uow() as uow:
        request = uow.chat.get_request(request_id)
    if request is None or user_id not in (request.mentee_id, request.mentor_id):
        raise errors.RequestNotFoundError()
    request.status = request.effective_status(now)
    return request


def list_requests(
    deps: Deps, user_id: str, box: RequestBox, limit: int = 20, cursor: str | None = None
) -> Page[MentorshipRequest]:
    """A user's incoming (as mentor) or outgoing (as mentee) requests, newest first."""
    _check_page(deps.config, limit)
    now = deps.clock()
    with deps.uow() as uow:
        page = uow.chat.list_requests(user_id, box, limit, cursor)
    for r in page.items:
        r.status = r.effective_status(now)
    return page


# --- conversations -------------------------------------------------------------------------


def open_direct(
    deps: Deps, user_id: str, other_id: str, *, allow_direct: bool = False
) -> Conversation:
    """The one-to-one conversation of two users, opening it if allowed.

    Allowed when it exists already, when ``other_id`` is open to all, or when
    the caller vouches with ``allow_direct`` (a shared booking).

    Raises:
        SelfTargetError, BlockedError, DirectNotAllowedError.
    """
    if user_id == other_id:
        raise errors.SelfTargetError("you cannot open a conversation with yourself")

    def attempt() -> Conversation:
        with deps.uow() as uow:
            repo = uow.chat
            existing = repo.find_direct(user_id, other_id)
            if existing is not None:
                return existing
            if _blocked_between(repo, user_id, other_id):
                raise errors.BlockedError("you cannot message this user")
            if allow_direct:
                reason = DirectReason.BOOKING
            elif _settings_or_default(repo, deps.config, other_id).open_to_all:
                reason = DirectReason.OPEN_TO_ALL
            else:
                raise errors.DirectNotAllowedError("send a mentorship request first")
            conversation = _open_direct(deps, repo, user_id, other_id, reason)
            uow.commit()
            return conversation

    return _retry_on_direct_race(attempt)


def _clean_title(cfg: Config, title: str) -> str:
    try:
        return clean_text(title, cfg.max_title)
    except errors.InvalidMessageError as e:
        raise errors.InvalidTitleError(e.detail) from e


def create_group(
    deps: Deps, owner_id: str, title: str, member_ids: Sequence[str]
) -> Outcome[Conversation]:
    """A group conversation owned by ``owner_id`` with ``member_ids``.

    Raises:
        InvalidTitleError, InvalidMembersError, GroupFullError.
    """
    cfg = deps.config
    clean = _clean_title(cfg, title)
    others = list(dict.fromkeys(member_ids))
    if not others or owner_id in others or len(others) != len(member_ids):
        raise errors.InvalidMembersError("give at least one other member, each once")
    if len(others) + 1 > cfg.max_group_members:
        raise errors.GroupFullError(f"a group has at most {cfg.max_group_members} members")
    now = deps.clock()
    conversation = Conversation(
        id=deps.ids(),
        kind=ConversationKind.GROUP,
        created_at=now,
        last_activity_at=now,
        created_by=owner_id,
        title=clean,
    )
    members = [Member(conversation.id, owner_id, MemberRole.OWNER, now)]
    members += [Member(conversation.id, u, MemberRole.MEMBER, now) for u in others]
    ids = tuple(m.user_id for m in members)
    with deps.uow() as uow:
        uow.chat.add_conversation(conversation, members)
        events = _commit(uow, MembershipChanged(conversation.id, added=ids, member_ids=ids))
    return Outcome(conversation, events)


def _owned_group(repo: ChatRepository, conversation_id: str, user_id: str) -> Conversation:
    conversation = _membership(repo, conversation_id, user_id)
    if conversation.kind is not ConversationKind.GROUP:
        raise errors.NotAGroupError("a direct conversation has no owner")
    member = repo.get_member(conversation_id, user_id)
    if member is None or member.role is not MemberRole.OWNER:
        raise errors.NotGroupOwnerError("only the owner may do this")
    return conversation


def rename_group(deps: Deps, owner_id: str, conversation_id: str, title: str) -> Conversation:
    """The owner changes the group's title."""
    clean = _clean_title(deps.config, title)
    with deps.uow() as uow:
        conversation = _owned_group(uow.chat, conversation_id, owner_id)
        conversation.title = clean
        uow.chat.save_conversation(conversation)
        uow.commit()
        return conversation


@_retried_on_membership_race
def add_members(
    deps: Deps, owner_id: str, conversation_id: str, user_ids: Sequence[str]
) -> Outcome[list[Member]]:
    """The owner adds users to a group; their unread count starts at zero.

    Raises:
        ConversationNotFoundError, NotAGroupError, NotGroupOwnerError,
        InvalidMembersError, AlreadyMemberError, GroupFullError.
    """
    new_ids = list(dict.fromkeys(user_ids))
    if not new_ids or len(new_ids) != len(user_ids):
        raise errors.InvalidMembersError("give at least one user, each once")
    now = deps.clock()
    with deps.uow() as uow:
        repo = uow.chat
        conversation = _owned_group(repo, conversation_id, owner_id)
        current = _member_ids(repo, conversation_id)
        if taken := [u for u in new_ids if u in current]:
            raise errors.AlreadyMemberError(f"already members: {', '.join(taken)}")
        if len(current) + len(new_ids) > deps.config.max_group_members:
            raise errors.GroupFullError(
                f"a group has at most {deps.config.max_group_members} members"
            )
        last = conversation.last_message.message_id if conversation.last_message else None
        added = [
            Member(conversation_id, u, MemberRole.MEMBER, now, last_read_id=last) for u in new_ids
        ]
        for m in added:
            repo.put_member(m)
        event = MembershipChanged(
            conversation_id, added=tuple(new_ids), member_ids=(*current, *new_ids)
        )
        events = _commit(uow, event)
    return Outcome(added, events)


@_retried_on_membership_race
def remove_member(deps: Deps, owner_id: str, conversation_id: str, user_id: str) -> Outcome[None]:
    """The owner removes a member (the owner leaves with :func:`leave`).

    Raises:
        ConversationNotFoundError, NotAGroupError, NotGroupOwnerError,
        InvalidMembersError, MemberNotFoundError.
    """
    if user_id == owner_id:
        raise errors.InvalidMembersError("to leave your own group, use leave")
    with deps.uow() as uow:
        repo = uow.chat
        _owned_group(repo, conversation_id, owner_id)
        if repo.get_member(conversation_id, user_id) is None:
            raise errors.MemberNotFoundError()
        repo.delete_member(conversation_id, user_id)
        remaining = _member_ids(repo, conversation_id)
        event = MembershipChanged(conversation_id, removed=(user_id,), member_ids=remaining)
        events = _commit(uow, event)
    return Outcome(None, events)


@_retried_on_membership_race
def leave(deps: Deps, user_id: str, conversation_id: str) -> Outcome[None]:
    """A member leaves a group; a leaving owner hands over to the longest-standing member.

    Raises:
        ConversationNotFoundError, NotAGroupError.
    """
    with deps.uow() as uow:
        repo = uow.chat
        conversation = _membership(repo, conversation_id, user_id)
        if conversation.kind is not ConversationKind.GROUP:
            raise errors.NotAGroupError("a direct conversation cannot be left")
        me = repo.get_member(conversation_id, user_id)
        assert me is not None
        repo.delete_member(conversation_id, user_id)
        remaining = list(repo.list_members(conversation_id))
        new_owner: str | None = None
        if me.role is MemberRole.OWNER and remaining:
            heir = min(remaining, key=lambda m: (m.joined_at, m.user_id))
            heir.role = MemberRole.OWNER
            repo.put_member(heir)
            new_owner = heir.user_id
        event = MembershipChanged(
            conversation_id,
            removed=(user_id,),
            new_owner_id=new_owner,
            member_ids=tuple(m.user_id for m in remaining),
        )
        events = _commit(uow, event)
    return Outcome(None, events)


def list_members(deps: Deps, user_id: str, conversation_id: str) -> list[Member]:
    """The members of a conversation the caller belongs to, longest-standing first."""
    with deps.uow() as uow:
        _membership(uow.chat, conversation_id, user_id)
        return list(uow.chat.list_members(conversation_id))


def _summary(cfg: Config, repo: ChatRepository, c: Conversation, m: Member) -> ConversationSummary:
    unread = repo.count_unread(c.id, m.last_read_id, m.user_id, cfg.unread_cap)
    return ConversationSummary(c, m.role, unread, c.last_message)


def get_conversation(deps: Deps, user_id: str, conversation_id: str) -> ConversationSummary:
    """One conversation the caller belongs to, with their unread count."""
    with deps.uow() as uow:
        conversation = _membership(uow.chat, conversation_id, user_id)
        member = uow.chat.get_member(conversation_id, user_id)
        assert member is not None
        return _summary(deps.config, uow.chat, conversation, member)


def list_conversations(
    deps: Deps, user_id: str, limit: int = 20, cursor: str | None = None
) -> Page[ConversationSummary]:
    """The user's conversations, most recent activity first, with unread counts."""
    _check_page(deps.config, limit)
    with deps.uow() as uow:
        page = uow.chat.list_conversations(user_id, limit, cursor)
        items = [_summary(deps.config, uow.chat, c, m) for c, m in page.items]
    return Page(items, page.next_cursor)


# --- messages ------------------------------------------------------------------------------


def _check_direct_not_blocked(
    repo: ChatRepository, conversation: Conversation, user_id: str
) -> None:
    if conversation.kind is ConversationKind.DIRECT:
        for other in _member_ids(repo, conversation.id):
            if other != user_id and _blocked_between(repo, user_id, other):
                raise errors.BlockedError("you cannot message this user")


def send_message(
    deps: Deps,
    author_id: str,
    conversation_id: str,
    text: str,
    *,
    client_message_id: str | None = None,
    reply_to: str | None = None,
    attachments: Sequence[Attachment] = (),
    on_audience: Callable[[tuple[str, ...]], object] | None = None,
) -> SendResult:
    """Post a message; resending the same ``client_message_id`` returns the stored one.

    ``on_audience`` is told the members a new message goes to just before it is
    committed (delivery reads their connections meanwhile).

    Raises:
        InvalidMessageError, InvalidAttachmentError, ConversationNotFoundError,
        BlockedError, MessageNotFoundError (reply target), MessageDeletedError,
        ClientMessageIdReusedError.
    """
    cfg = deps.config
    _check_client_id(client_message_id)
    _check_attachments(cfg, conversation_id, attachments)
    body = clean_text(text, cfg.max_text, allow_empty=bool(attachments))
    _check_uploaded(deps, attachments)

    def existing() -> SendResult | None:
        if client_message_id is None:
            return None
        with deps.uow() as uow:
            found = uow.chat.find_by_client_id(author_id, client_message_id)
            if found is None:
                return None
            if found.conversation_id != conversation_id:
                raise errors.ClientMessageIdReusedError(
                    "this client_message_id was used in another conversation"
                )
            _membership(uow.chat, conversation_id, author_id)
            return SendResult(found, created=False)

    # A first send is the common case: its client id is checked by the write's own
    # condition, and only a refused write looks the stored message up.
    try:
        with deps.uow() as uow:
            repo = uow.chat
            conversation = _membership(repo, conversation_id, author_id)
            _check_direct_not_blocked(repo, conversation, author_id)
            if reply_to is not None:
                target = repo.get_message(conversation_id, reply_to)
                if target is None:
                    raise errors.MessageNotFoundError("the replied-to message is not here")
                if target.deleted:
                    raise errors.MessageDeletedError("cannot reply to a deleted message")
            message, posted = _post(
                deps,
                repo,
                conversation,
                author_id=author_id,
                text=body,
                client_message_id=client_message_id,
                reply_to=reply_to,
                attachments=attachments,
            )
            if on_audience is not None:
                on_audience(posted.member_ids)
            events = _commit(uow, posted)
    except errors.DuplicateClientMessageError:
        # A resend (or a concurrent one that won the write): return what is stored.
        if (resent := existing()) is not None:
            return resent
        raise
    except ProblemError:
        # Refused now (a block, a deleted reply target), but a resend of a message
        # stored before that is still answered with it.
        if (resent := existing()) is not None:
            return resent
        raise
    return SendResult(message, created=True, events=events)


def _own_message(
    repo: ChatRepository, conversation_id: str, message_id: str, user_id: str
) -> tuple[Conversation, Message]:
    conversation = _membership(repo, conversation_id, user_id)
    message = repo.get_message(conversation_id, message_id)
    if message is None:
        raise errors.MessageNotFoundError()
    if message.author_id != user_id:
        raise errors.NotMessageAuthorError("only the author may change a message")
    if message.deleted:
        raise errors.MessageDeletedError("the message was deleted")
    return conversation, message


def edit_message(
    deps: Deps, user_id: str, conversation_id: str, message_id: str, text: str
) -> Outcome[Message]:
    """The author changes a message's text (attachments stay).

    Raises:
        ConversationNotFoundError, MessageNotFoundError, NotMessageAuthorError,
        MessageDeletedError, InvalidMessageError, BlockedError.
    """
    now = deps.clock()
    with deps.uow() as uow:
        repo = uow.chat
        conversation, message = _own_message(repo, conversation_id, message_id, user_id)
        _check_direct_not_blocked(repo, conversation, user_id)
        message.text = clean_text(text, deps.config.max_text, allow_empty=bool(message.attachments))
        message.edited_at = now
        repo.save_message(message)
        _refresh_preview(deps.config, repo, message)
        members = _member_ids(repo, conversation_id)
        events = _commit(uow, MessageEdited(conversation_id, message_id, user_id, members, now))
    return Outcome(message, events)


def delete_message(
    deps: Deps, user_id: str, conversation_id: str, message_id: str
) -> Outcome[Message]:
    """The author deletes a message: it stays in order as a tombstone.

    Raises:
        ConversationNotFoundError, MessageNotFoundError, NotMessageAuthorError,
        MessageDeletedError.
    """
    now = deps.clock()
    with deps.uow() as uow:
        repo = uow.chat
        _, message = _own_message(repo, conversation_id, message_id, user_id)
        uploaded = [a.key for a in message.attachments]
        message.text = ""
        message.attachments = []
        message.reactions = {}
        message.deleted_at = now
        repo.save_message(message)
        _refresh_preview(deps.config, repo, message)
        members = _member_ids(repo, conversation_id)
        events = _commit(uow, MessageDeleted(conversation_id, message_id, user_id, members, now))
    if uploaded and deps.attachments is not None:
        deps.attachments.delete(uploaded)  # after the commit: a failure leaves only orphans
    return Outcome(message, events)


def toggle_reaction(
    deps: Deps, user_id: str, conversation_id: str, message_id: str, emoji: str
) -> Outcome[Message]:
    """Add the user's reaction, or remove it if they had already reacted with it.

    Raises:
        InvalidReactionError, ConversationNotFoundError, MessageNotFoundError,
        MessageDeletedError, BlockedError.
    """
    cfg = deps.config
    if emoji not in cfg.reactions and not is_single_emoji(emoji, cfg.max_reaction_len):
        raise errors.InvalidReactionError("react with one emoji")
    with deps.uow() as uow:
        repo = uow.chat
        conversation = _membership(repo, conversation_id, user_id)
        _check_direct_not_blocked(repo, conversation, user_id)
        message = repo.get_message(conversation_id, message_id)
        if message is None:
            raise errors.MessageNotFoundError()
        if message.deleted:
            raise errors.MessageDeletedError("cannot react to a deleted message")
        users = message.reactions.setdefault(emoji, set())
        added = user_id not in users
        if added:
            users.add(user_id)
        else:
            users.discard(user_id)
            if not users:
                del message.reactions[emoji]
        repo.save_message(message)
        members = _member_ids(repo, conversation_id)
        event = ReactionToggled(conversation_id, message_id, user_id, emoji, added, members)
        events = _commit(uow, event)
    return Outcome(message, events)


def _move_receipt(
    deps: Deps, user_id: str, conversation_id: str, up_to: str, kind: str
) -> Outcome[Member]:
    with deps.uow() as uow:
        repo = uow.chat
        _membership(repo, conversation_id, user_id)
        if repo.get_message(conversation_id, up_to) is None:
            raise errors.MessageNotFoundError()
        member = repo.get_member(conversation_id, user_id)
        assert member is not None
        current = member.last_read_id if kind == "read" else member.last_delivered_id
        if current is not None and up_to <= current:
            return Outcome(member)  # receipts only move forward
        if kind == "read":
            member.last_read_id = up_to
        if member.last_delivered_id is None or up_to > member.last_delivered_id:
            member.last_delivered_id = up_to  # read implies delivered
        repo.put_member(member)
        members = _member_ids(repo, conversation_id)
        events = _commit(uow, ReceiptMoved(conversation_id, user_id, kind, up_to, members))
    return Outcome(member, events)


def mark_read(
    deps: Deps, user_id: str, conversation_id: str, up_to_message_id: str
) -> Outcome[Member]:
    """Move the member's read receipt forward to ``up_to_message_id`` (never back).

    Raises:
        ConversationNotFoundError, MessageNotFoundError.
    """
    return _move_receipt(deps, user_id, conversation_id, up_to_message_id, "read")


def mark_delivered(
    deps: Deps, user_id: str, conversation_id: str, up_to_message_id: str
) -> Outcome[Member]:
    """Move the member's delivered receipt forward to ``up_to_message_id`` (never back)."""
    return _move_receipt(deps, user_id, conversation_id, up_to_message_id, "delivered")


def list_messages(
    deps: Deps,
    user_id: str,
    conversation_id: str,
    *,
    before: str | None = None,
    after: str | None = None,
    limit: int = 50,
) -> MessagePage:
    """History around a message id: ``before`` newest first, ``after`` oldest first.

    Raises:
        InvalidPageError, ConversationNotFoundError.
    """
    _check_page(deps.config, limit)
    if before is not None and after is not None:
        raise errors.InvalidPageError("give before or after, not both")
    with deps.uow() as uow:
        repo = uow.chat
        _membership(repo, conversation_id, user_id)
        if after is not None:
            found = list(repo.messages_after(conversation_id, after, limit + 1))
        else:
            found = list(repo.messages_before(conversation_id, before, limit + 1))
    has_more = len(found) > limit
    items = found[:limit]
    if after is not None:
        return MessagePage(items, "after", has_more, items[-1].id if items else after)
    return MessagePage(items, "before", has_more, items[-1].id if has_more else None)


# --- attachments ---------------------------------------------------------------------------


@dataclass(frozen=True)
class UploadTicket:
    """Where and how a client uploads one attachment (a presigned POST)."""

    attachment: Attachment
    attachment_id: str
    url: str
    fields: dict[str, str]
    expires_at: datetime


def _store(deps: Deps) -> AttachmentStore:
    if deps.attachments is None:
        raise errors.InvalidAttachmentError("attachments are not accepted here")
    return deps.attachments


def start_upload(
    deps: Deps,
    user_id: str,
    conversation_id: str,
    content_type: str,
    size: int,
    name: str | None = None,
) -> UploadTicket:
    """A member may upload one attachment of this type and exact size, for a while.

    Raises:
        InvalidAttachmentError, ConversationNotFoundError, BlockedError.
    """
    cfg = deps.config
    attachment_id = deps.ids()
    key = f"{cfg.attachment_prefix}/{conversation_id}/{attachment_id}"
    clean_name = name.strip() if name is not None else None
    attachment = Attachment(key, content_type, size, clean_name)
    _check_attachments(cfg, conversation_id, [attachment])
    store = _store(deps)
    audience(deps, user_id, conversation_id)  # a member, and not blocked
    url, fields = store.upload_form(key, content_type, size, cfg.upload_expiry_s)
    expires = deps.clock() + timedelta(seconds=cfg.upload_expiry_s)
    return UploadTicket(attachment, attachment_id, url, fields, expires)


def download_url(
    deps: Deps, user_id: str, conversation_id: str, attachment_id: str
) -> tuple[str, datetime]:
    """A member's expiring link to an uploaded attachment of the conversation.

    Raises:
        ConversationNotFoundError, AttachmentNotFoundError.
    """
    cfg = deps.config
    store = _store(deps)
    with deps.uow() as uow:
        _membership(uow.chat, conversation_id, user_id)
    if not _KEY_TAIL.fullmatch(attachment_id):
        raise errors.AttachmentNotFoundError()
    key = f"{cfg.attachment_prefix}/{conversation_id}/{attachment_id}"
    if store.describe(key) is None:
        raise errors.AttachmentNotFoundError()
    url = store.download_url(key, None, cfg.download_expiry_s)
    return url, deps.clock() + timedelta(seconds=cfg.download_expiry_s)


# --- live delivery (the socket) ------------------------------------------------------------


def record_undelivered(deps: Deps, event: MessageUndelivered) -> None:
    """Put a ``message.undelivered`` event in the outbox: notifications take over from here."""
    with deps.uow() as uow:
        _commit(uow, event)


def audience(deps: Deps, user_id: str, conversation_id: str) -> tuple[str, ...]:
    """The members a member's ephemeral signal (typing, presence) goes to.

    Raises:
        ConversationNotFoundError: not a member; BlockedError: a block in a direct one.
    """
    with deps.uow() as uow:
        repo = uow.chat
        conversation = _membership(repo, conversation_id, user_id)
        members = _member_ids(repo, conversation_id)
        if conversation.kind is ConversationKind.DIRECT:
            for other in members:
                if other != user_id and _blocked_between(repo, user_id, other):
                    raise errors.BlockedError("you cannot message this user")
    return members


def direct_contacts(deps: Deps, user_id: str, limit: int = 50) -> list[str]:
    """The other members of the user's ``limit`` most recently active direct conversations."""
    with deps.uow() as uow:
        page = uow.chat.list_conversations(user_id, limit, None)
    contacts: list[str] = []
    for conversation, _ in page.items:
        if conversation.kind is ConversationKind.DIRECT and conversation.direct_key:
            contacts += [u for u in conversation.direct_key.split("#") if u != user_id]
    return list(dict.fromkeys(contacts))
