"""Domain model of the chat service and the ports its logic talks to.

Plain dataclasses and Protocols: no boto3, no PynamoDB. The DynamoDB adapter
(``data.py``, next) implements :class:`ChatRepository` and :class:`Uow`;
``tests/unit/chat/fakes.py`` holds in-memory fakes with the same semantics.

Every repository method is a key lookup or a query of one partition (a
conversation's messages, a user's memberships, requests or blocks), so the
adapter never scans. Uniqueness rules are conditions of the write, raised by the
repository (at the write or, for DynamoDB transactions, at ``commit``):

* one direct conversation per pair -> ``errors.DirectConversationExistsError``
* one pending request per (mentee, mentor) -> ``errors.RequestPendingError``
* one message per (author, client_message_id) -> ``errors.DuplicateClientMessageError``

Message ids are ULIDs: their string order is their time order, so they serve
as the sort key of a conversation's messages and as the history cursor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Protocol

from lwm_core.pagination import Page


class RequestStatus(StrEnum):
    """Life cycle of a mentorship request."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class RequestBox(StrEnum):
    """Which side of a user's requests to list."""

    INCOMING = "incoming"  # the user is the mentor
    OUTGOING = "outgoing"  # the user is the mentee


class ConversationKind(StrEnum):
    """One-to-one or group."""

    DIRECT = "direct"
    GROUP = "group"


class DirectReason(StrEnum):
    """Why a direct conversation was allowed to open."""

    ACCEPTED_REQUEST = "accepted_request"
    OPEN_TO_ALL = "open_to_all"
    BOOKING = "booking"


class MemberRole(StrEnum):
    """A member's role in a conversation (direct members are both ``member``)."""

    OWNER = "owner"
    MEMBER = "member"


def pair_key(a: str, b: str) -> str:
    """The order-independent key of a pair of users (``"<lower>#<higher>"``)."""
    lo, hi = sorted((a, b))
    return f"{lo}#{hi}"


@dataclass(frozen=True)
class ChatSettings:
    """A mentor's chat preferences."""

    user_id: str
    open_to_all: bool = False
    request_ttl_days: int = 7


@dataclass(frozen=True)
class Block:
    """``blocker_id`` does not want to hear from ``blocked_id``."""

    blocker_id: str
    blocked_id: str
    created_at: datetime


@dataclass
class MentorshipRequest:
    """A mentee asks a mentor for mentorship, with a first message."""

    id: str
    mentee_id: str
    mentor_id: str
    text: str
    created_at: datetime
    expires_at: datetime
    status: RequestStatus = RequestStatus.PENDING
    answered_at: datetime | None = None
    decline_reason: str | None = None
    conversation_id: str | None = None

    def effective_status(self, now: datetime) -> RequestStatus:
        """The status at ``now``: a pending request past ``expires_at`` is expired."""
        if self.status is RequestStatus.PENDING and now >= self.expires_at:
            return RequestStatus.EXPIRED
        return self.status


@dataclass(frozen=True)
class Attachment:
    """A reference to an uploaded object (the upload goes through a presigned URL)."""

    key: str
    content_type: str
    size: int
    name: str | None = None


@dataclass(frozen=True)
class MessagePreview:
    """What a conversation list shows of the last message."""

    message_id: str
    author_id: str
    text: str
    created_at: datetime
    deleted: bool = False
    attachments: int = 0


@dataclass
class Message:
    """One message of a conversation; deleted ones stay as tombstones."""

    id: str
    conversation_id: str
    author_id: str
    text: str
    created_at: datetime
    client_message_id: str | None = None
    reply_to: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    # emoji -> ids of the users who reacted with it
    reactions: dict[str, set[str]] = field(default_factory=dict)
    edited_at: datetime | None = None
    deleted_at: datetime | None = None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


@dataclass
class Conversation:
    """A direct (two users) or group conversation."""

    id: str
    kind: ConversationKind
    created_at: datetime
    last_activity_at: datetime
    created_by: str
    title: str | None = None
    # direct only: pair_key() of the two users and why it was allowed
    direct_key: str | None = None
    direct_reason: DirectReason | None = None
    last_message: MessagePreview | None = None


@dataclass
class Member:
    """A user's membership of a conversation, with their receipts."""

    conversation_id: str
    user_id: str
    role: MemberRole
    joined_at: datetime
    last_read_id: str | None = None
    last_delivered_id: str | None = None


# --- events ----------------------------------------------------------------------------
# Written to the outbox with the change they describe (``ChatRepository.record``) and
# published to the bus from the table's stream, ``detail_type`` as the DetailType; the
# logic also returns them, for live delivery to members' devices (``delivery``).


@dataclass(frozen=True)
class MessagePosted:
    """A new message was accepted."""

    detail_type: ClassVar[str] = "message.posted"

    conversation_id: str
    message_id: str
    author_id: str
    member_ids: tuple[str, ...]
    created_at: datetime
    preview: str
    reply_to: str | None = None


@dataclass(frozen=True)
class MessageEdited:
    """A message's text changed."""

    detail_type: ClassVar[str] = "message.edited"

    conversation_id: str
    message_id: str
    author_id: str
    member_ids: tuple[str, ...]
    edited_at: datetime


@dataclass(frozen=True)
class MessageDeleted:
    """A message became a tombstone."""

    detail_type: ClassVar[str] = "message.deleted"

    conversation_id: str
    message_id: str
    author_id: str
    member_ids: tuple[str, ...]
    deleted_at: datetime


@dataclass(frozen=True)
class ReactionToggled:
    """A user added or removed a reaction."""

    detail_type: ClassVar[str] = "message.reaction_toggled"

    conversation_id: str
    message_id: str
    user_id: str
    emoji: str
    added: bool
    member_ids: tuple[str, ...]


@dataclass(frozen=True)
class ReceiptMoved:
    """A member's read or delivered position moved forward."""

    detail_type: ClassVar[str] = "receipt.moved"

    conversation_id: str
    user_id: str
    kind: str  # "read" | "delivered"
    up_to_message_id: str
    member_ids: tuple[str, ...]


@dataclass(frozen=True)
class RequestSent:
    """A mentee sent a mentorship request."""

    detail_type: ClassVar[str] = "request.sent"

    request_id: str
    mentee_id: str
    mentor_id: str
    expires_at: datetime


@dataclass(frozen=True)
class RequestAnswered:
    """A request left ``pending`` (accepted, declined, withdrawn)."""

    detail_type: ClassVar[str] = "request.answered"

    request_id: str
    mentee_id: str
    mentor_id: str
    status: RequestStatus
    conversation_id: str | None = None


@dataclass(frozen=True)
class MembershipChanged:
    """Users joined or left a group (or its owner changed)."""

    detail_type: ClassVar[str] = "membership.changed"

    conversation_id: str
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    new_owner_id: str | None = None
    member_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class MessageUndelivered:
    """A new message reached no device of these members: notifications take over."""

    detail_type: ClassVar[str] = "message.undelivered"

    conversation_id: str
    message_id: str
    author_id: str
    recipient_ids: tuple[str, ...]
    created_at: datetime
    preview: str


Event = (
    MessagePosted
    | MessageUndelivered
    | MessageEdited
    | MessageDeleted
    | ReactionToggled
    | ReceiptMoved
    | RequestSent
    | RequestAnswered
    | MembershipChanged
)


# --- ports -----------------------------------------------------------------------------


class ChatRepository(Protocol):
    """Chat state (one DynamoDB table). Objects go in and out as copies."""

    # settings and blocks (partition: user)
    def get_settings(self, user_id: str) -> ChatSettings | None: ...
    def put_settings(self, settings: ChatSettings) -> None: ...
    def get_block(self, blocker_id: str, blocked_id: str) -> Block | None: ...
    def put_block(self, block: Block) -> None: ...
    def delete_block(self, blocker_id: str, blocked_id: str) -> None: ...
    def list_blocks(self, blocker_id: str) -> Sequence[Block]: ...

    # requests
    def add_request(self, request: MentorshipRequest) -> None:
        """Store a new pending request; ``RequestPendingError`` if the pair has one."""

    def save_request(self, request: MentorshipRequest) -> None:
        """Store a changed request; leaving ``pending`` frees the pair's pending slot."""

    def get_request(self, request_id: str) -> MentorshipRequest | None: ...
    def get_pending_request(self, mentee_id: str, mentor_id: str) -> MentorshipRequest | None: ...
    def list_requests(
        self, user_id: str, box: RequestBox, limit: int, cursor: str | None
    ) -> Page[MentorshipRequest]:
        """A user's requests, newest first."""

    # conversations and members
    def add_conversation(self, conversation: Conversation, members: Sequence[Member]) -> None:
        """Store a new conversation and its members.

        Raises ``DirectConversationExistsError`` when a direct one exists for the pair.
        """

    def save_conversation(self, conversation: Conversation) -> None: ...
    def get_conversation(self, conversation_id: str) -> Conversation | None: ...
    def find_direct(self, a: str, b: str) -> Conversation | None: ...
    def get_member(self, conversation_id: str, user_id: str) -> Member | None: ...
    def list_members(self, conversation_id: str) -> Sequence[Member]:
        """Members of one conversation, longest-standing first."""

    def member_ids(self, conversation_id: str) -> tuple[str, ...]:
        """The members' user ids, longest-standing first (cheaper than ``list_members``)."""

    def prefetch_membership(self, conversation_id: str, user_id: str) -> None:
        """A hint: the conversation, the user's membership and the member ids are about to
        be read (a store with round trips reads them in one)."""

    def put_member(self, member: Member) -> None: ...
    def delete_member(self, conversation_id: str, user_id: str) -> None: ...
    def list_conversations(
        self, user_id: str, limit: int, cursor: str | None
    ) -> Page[tuple[Conversation, Member]]:
        """The user's conversations, most recent ``last_activity_at`` first."""

    # messages (partition: conversation, sort key: message id)
    def add_message(self, message: Message) -> None:
        """Store a new message; ``DuplicateClientMessageError`` if its client id was used."""

    def save_message(self, message: Message) -> None: ...
    def get_message(self, conversation_id: str, message_id: str) -> Message | None: ...
    def find_by_client_id(self, author_id: str, client_message_id: str) -> Message | None: ...
    def messages_before(
        self, conversation_id: str, before_id: str | None, limit: int
    ) -> Sequence[Message]:
        """Up to ``limit`` messages with id < ``before_id`` (all if None), newest first."""

    def messages_after(self, conversation_id: str, after_id: str, limit: int) -> Sequence[Message]:
        """Up to ``limit`` messages with id > ``after_id``, oldest first."""

    def count_unread(
        self, conversation_id: str, after_id: str | None, reader_id: str, cap: int
    ) -> int:
        """Messages after ``after_id`` not by ``reader_id`` and not deleted, counted to ``cap``."""

    # the outbox (published to the bus from the table's stream)
    def record(self, events: Sequence[Event]) -> None:
        """Write ``events`` with the unit of work: they exist exactly when it commits."""


class AttachmentStore(Protocol):
    """Where attachments live (an S3 bucket): clients upload and download directly."""

    def upload_form(
        self, key: str, content_type: str, size: int, expires_s: int
    ) -> tuple[str, dict[str, str]]:
        """A presigned POST (url, form fields) accepting exactly this type and size at ``key``."""

    def describe(self, key: str) -> tuple[int, str] | None:
        """``(size, content type)`` of the stored object, or None if nothing was uploaded."""

    def download_url(self, key: str, filename: str | None, expires_s: int) -> str:
        """A presigned GET of ``key`` that expires."""

    def delete(self, keys: Sequence[str]) -> None:
        """Remove objects (idempotent)."""


class Uow(Protocol):
    """A transaction over the chat repository (a DynamoDB ``TransactWriteItems``)."""

    @property
    def chat(self) -> ChatRepository: ...

    def commit(self) -> None: ...


class Clock(Protocol):
    """Now, in UTC."""

    def __call__(self) -> datetime: ...


class Ids(Protocol):
    """New sortable ids (ULIDs in production; strictly increasing)."""

    def __call__(self) -> str: ...
