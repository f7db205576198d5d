"""Errors of the chat service, each with a stable problem ``code``.

Reading or writing a conversation one is not a member of is reported as
:class:`ConversationNotFoundError` (404), exactly like a conversation that does
not exist, so conversation ids do not leak who talks to whom. The same holds
for requests: a user who is neither the mentee nor the mentor of a request
gets :class:`RequestNotFoundError`.
"""

from __future__ import annotations

from lwm_core.errors import ConflictError, ForbiddenError, NotFoundError, RequestValidationError


class ChatError(Exception):
    """Base of chat-service errors that are not problem responses."""


# --- raised by repositories when a uniqueness condition fails ------------------------


class DuplicateClientMessageError(ChatError):
    """A message with this (author, client_message_id) was already stored."""


# --- validation (422) ------------------------------------------------------------------


class InvalidMessageError(RequestValidationError):
    """The message text is empty, too long or contains forbidden characters."""

    code = "invalid_message"
    title = "Invalid message"


class InvalidAttachmentError(RequestValidationError):
    """An attachment reference has a bad key, content type or size."""

    code = "invalid_attachment"
    title = "Invalid attachment"


class InvalidReactionError(RequestValidationError):
    """The reaction is not an allowed emoji or a single grapheme."""

    code = "invalid_reaction"
    title = "Invalid reaction"


class InvalidTitleError(RequestValidationError):
    """A group title is empty or too long."""

    code = "invalid_title"
    title = "Invalid group title"


class InvalidReasonError(RequestValidationError):
    """A decline reason is too long or contains forbidden characters."""

    code = "invalid_reason"
    title = "Invalid reason"


class InvalidSettingsError(RequestValidationError):
    """Chat settings are out of range."""

    code = "invalid_settings"
    title = "Invalid chat settings"


class InvalidMembersError(RequestValidationError):
    """A member list is empty, too long or contains the caller or duplicates."""

    code = "invalid_members"
    title = "Invalid members"


class SelfTargetError(RequestValidationError):
    """A user cannot request, block or message themselves one-to-one."""

    code = "self_target"
    title = "Cannot target yourself"


class InvalidPageError(RequestValidationError):
    """History paging parameters are contradictory or out of range."""

    code = "invalid_page"
    title = "Invalid page parameters"


# --- not found (404) -------------------------------------------------------------------


class ConversationNotFoundError(NotFoundError):
    """No such conversation, or the caller is not a member of it."""

    code = "conversation_not_found"
    title = "Conversation not found"


class MessageNotFoundError(NotFoundError):
    """No such message in this conversation."""

    code = "message_not_found"
    title = "Message not found"


class AttachmentNotFoundError(NotFoundError):
    """No uploaded attachment with this id in the conversation."""

    code = "attachment_not_found"
    title = "Attachment not found"


class RequestNotFoundError(NotFoundError):
    """No such mentorship request, or the caller is not a party to it."""

    code = "request_not_found"
    title = "Request not found"


class MemberNotFoundError(NotFoundError):
    """The user is not a member of this group."""

    code = "member_not_found"
    title = "Member not found"


# --- forbidden (403) -------------------------------------------------------------------


class BlockedError(ForbiddenError):
    """One of the two users blocked the other (never says which)."""

    code = "blocked"
    title = "Blocked"


class DirectNotAllowedError(ForbiddenError):
    """No accepted request, open mentor or shared booking allows this conversation."""

    code = "direct_not_allowed"
    title = "Direct conversation not allowed"


class NotRequestRecipientError(ForbiddenError):
    """Only the mentor a request was sent to may answer it."""

    code = "not_request_recipient"
    title = "Not the recipient of this request"


class NotRequestSenderError(ForbiddenError):
    """Only the mentee who sent a request may withdraw it."""

    code = "not_request_sender"
    title = "Not the sender of this request"


class NotGroupOwnerError(ForbiddenError):
    """Only a group's owner may add or remove members or rename it."""

    code = "not_group_owner"
    title = "Not the group owner"


class NotMessageAuthorError(ForbiddenError):
    """Only a message's author may edit or delete it."""

    code = "not_message_author"
    title = "Not the message author"


class NotAGroupError(ForbiddenError):
    """Membership changes apply to group conversations only."""

    code = "not_a_group"
    title = "Not a group conversation"


# --- conflict (409) --------------------------------------------------------------------


class RequestPendingError(ConflictError):
    """The mentee already has a pending request to this mentor."""

    code = "request_pending"
    title = "Request already pending"


class RequestNotPendingError(ConflictError):
    """The request was already accepted, declined, withdrawn or has expired."""

    code = "request_not_pending"
    title = "Request no longer pending"


class AlreadyConnectedError(ConflictError):
    """The two users already share a direct conversation; no request is needed."""

    code = "already_connected"
    title = "Already connected"


class DirectConversationExistsError(ConflictError):
    """A direct conversation for this pair already exists (raised by repositories)."""

    code = "direct_conversation_exists"
    title = "Direct conversation exists"


class MessageDeletedError(ConflictError):
    """The message was deleted; it cannot be edited, reacted to or replied to."""

    code = "message_deleted"
    title = "Message deleted"


class AlreadyMemberError(ConflictError):
    """The user is already a member of this group."""

    code = "already_member"
    title = "Already a member"


class GroupFullError(ConflictError):
    """The group would exceed its member limit."""

    code = "group_full"
    title = "Group is full"


class ClientMessageIdReusedError(ConflictError):
    """This client_message_id was already used by the author in another conversation."""

    code = "client_message_id_reused"
    title = "Client message id reused"


class MembershipChangedError(ConflictError):
    """Another change to the conversation's members landed first (retried by the service)."""

    code = "membership_changed"
    title = "Members changed meanwhile"
