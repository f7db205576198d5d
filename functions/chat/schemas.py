"""Request and response bodies of the chat REST API (the OpenAPI contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, StringConstraints

from functions.chat.domain import (
    Attachment,
    Conversation,
    Member,
    MentorshipRequest,
    Message,
    MessagePreview,
)
from functions.chat.logic import ConversationSummary, MessagePage, UploadTicket
from lwm_core.models import StrictModel

Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Text = Annotated[str, StringConstraints(max_length=4000)]


class RequestIn(StrictModel):
    mentor_id: Id
    text: Text = Field(description="The first message; it opens the conversation if accepted")


class DeclineIn(StrictModel):
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class AttachmentIn(StrictModel):
    key: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    content_type: Annotated[str, StringConstraints(min_length=3, max_length=100)]
    size: StrictInt = Field(ge=1)
    name: Annotated[str, StringConstraints(max_length=200)] | None = None

    def to_domain(self) -> Attachment:
        return Attachment(self.key, self.content_type, self.size, self.name)


class AttachmentOut(BaseModel):
    key: str
    content_type: str
    size: int
    name: str | None


class UploadIn(StrictModel):
    content_type: Annotated[str, StringConstraints(min_length=3, max_length=100)]
    size: StrictInt = Field(ge=1, description="The exact size in bytes of the file to upload")
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class UploadFormOut(BaseModel):
    url: str = Field(description="POST a multipart form here: the fields, then `file`")
    fields: dict[str, str]
    expires_at: datetime


class UploadOut(BaseModel):
    attachment_id: str
    attachment: AttachmentOut = Field(description="Send this in a message's `attachments`")
    upload: UploadFormOut

    @classmethod
    def from_domain(cls, t: UploadTicket) -> UploadOut:
        a = t.attachment
        return cls(
            attachment_id=t.attachment_id,
            attachment=AttachmentOut(
                key=a.key, content_type=a.content_type, size=a.size, name=a.name
            ),
            upload=UploadFormOut(url=t.url, fields=t.fields, expires_at=t.expires_at),
        )


class DownloadOut(BaseModel):
    url: str = Field(description="GET it before `expires_at`")
    expires_at: datetime


class MessageIn(StrictModel):
    text: Text = ""
    client_message_id: Id | None = Field(
        None, description="Makes the send idempotent: a resend returns the stored message"
    )
    reply_to: Id | None = None
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=5)


class EditIn(StrictModel):
    text: Text


class ReactionIn(StrictModel):
    emoji: Annotated[str, StringConstraints(min_length=1, max_length=16)]


class ReceiptIn(StrictModel):
    up_to_message_id: Id


class DirectIn(StrictModel):
    user_id: Id


class GroupIn(StrictModel):
    title: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    member_ids: list[Id] = Field(min_length=1, max_length=999)


class MembersIn(StrictModel):
    user_ids: list[Id] = Field(min_length=1, max_length=100)


class SettingsIn(StrictModel):
    open_to_all: StrictBool | None = None
    request_ttl_days: StrictInt | None = Field(None, ge=1, le=30)


class ChatMessageOut(BaseModel):
    id: str
    conversation_id: str
    author_id: str
    text: str = Field(description="HTML-safe text: no markup, entities escaped")
    created_at: datetime
    client_message_id: str | None
    reply_to: str | None
    attachments: list[AttachmentOut]
    reactions: dict[str, list[str]]
    edited_at: datetime | None
    deleted: bool

    @classmethod
    def from_domain(cls, m: Message) -> ChatMessageOut:
        return cls(
            id=m.id,
            conversation_id=m.conversation_id,
            author_id=m.author_id,
            text=m.text,
            created_at=m.created_at,
            client_message_id=m.client_message_id,
            reply_to=m.reply_to,
            attachments=[
                AttachmentOut(key=a.key, content_type=a.content_type, size=a.size, name=a.name)
                for a in m.attachments
            ],
            reactions={emoji: sorted(users) for emoji, users in m.reactions.items()},
            edited_at=m.edited_at,
            deleted=m.deleted_at is not None,
        )


class PreviewOut(BaseModel):
    message_id: str
    author_id: str
    text: str
    created_at: datetime
    deleted: bool
    attachments: int

    @classmethod
    def from_domain(cls, p: MessagePreview) -> PreviewOut:
        return cls(
            message_id=p.message_id,
            author_id=p.author_id,
            text=p.text,
            created_at=p.created_at,
            deleted=p.deleted,
            attachments=p.attachments,
        )


class ConversationOut(BaseModel):
    id: str
    kind: Literal["direct", "group"]
    title: str | None
    created_at: datetime
    last_activity_at: datetime
    last_message: PreviewOut | None
    role: Literal["owner", "member"] | None = None
    unread: int | None = Field(None, description="Messages after your read receipt (max 100)")

    @classmethod
    def from_domain(cls, c: Conversation) -> ConversationOut:
        return cls(
            id=c.id,
            kind=c.kind.value,
            title=c.title,
            created_at=c.created_at,
            last_activity_at=c.last_activity_at,
            last_message=PreviewOut.from_domain(c.last_message) if c.last_message else None,
        )

    @classmethod
    def from_summary(cls, s: ConversationSummary) -> ConversationOut:
        out = cls.from_domain(s.conversation)
        return out.model_copy(update={"role": s.role.value, "unread": s.unread})


class MemberOut(BaseModel):
    user_id: str
    role: Literal["owner", "member"]
    joined_at: datetime
    last_read_id: str | None
    last_delivered_id: str | None

    @classmethod
    def from_domain(cls, m: Member) -> MemberOut:
        return cls(
            user_id=m.user_id,
            role=m.role.value,
            joined_at=m.joined_at,
            last_read_id=m.last_read_id,
            last_delivered_id=m.last_delivered_id,
        )


class RequestOut(BaseModel):
    id: str
    mentee_id: str
    mentor_id: str
    text: str
    status: Literal["pending", "accepted", "declined", "expired", "withdrawn"]
    created_at: datetime
    expires_at: datetime
    answered_at: datetime | None
    decline_reason: str | None
    conversation_id: str | None

    @classmethod
    def from_domain(cls, r: MentorshipRequest) -> RequestOut:
        return cls(
            id=r.id,
            mentee_id=r.mentee_id,
            mentor_id=r.mentor_id,
            text=r.text,
            status=r.status.value,
            created_at=r.created_at,
            expires_at=r.expires_at,
            answered_at=r.answered_at,
            decline_reason=r.decline_reason,
            conversation_id=r.conversation_id,
        )


class ChatMessagePageOut(BaseModel):
    items: list[ChatMessageOut]
    direction: Literal["before", "after"]
    has_more: bool
    next_cursor: str | None

    @classmethod
    def from_domain(cls, page: MessagePage) -> ChatMessagePageOut:
        return cls(
            items=[ChatMessageOut.from_domain(m) for m in page.items],
            direction=page.direction,
            has_more=page.has_more,
            next_cursor=page.next_cursor,
        )
