"""HTTP routes of the chat service: parse, call one logic function, shape the reply.

Sending and receipts are also offered over the socket (``functions.chat.socket``)
for clients that are connected; REST serves history, lists, every other change
and clients that are not. The events a change returns are in the outbox
already (committed with it); here they are pushed live to members' devices.
"""

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from functions.chat import logic
from functions.chat import service as svc
from functions.chat.domain import Event, Message, RequestBox
from functions.chat.schemas import (
    ChatMessageOut,
    ChatMessagePageOut,
    ConversationOut,
    DeclineIn,
    DirectIn,
    DownloadOut,
    EditIn,
    GroupIn,
    MemberOut,
    MembersIn,
    MessageIn,
    ReactionIn,
    ReceiptIn,
    RequestIn,
    RequestOut,
    SettingsIn,
    UploadIn,
    UploadOut,
)
from lwm_core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from lwm_core.web import CurrentPrincipal, create_app

router = APIRouter()


def _deps() -> logic.Deps:
    return svc.deps()


DepsDep = Annotated[logic.Deps, Depends(_deps)]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
# Ids in paths: the platform's ids (ULIDs, user ids) are short and URL-safe; anything
# else is a 422 before it reaches a key.
PathId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
MessageRef = Annotated[str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Cursor = Annotated[str | None, Query(max_length=500)]


def _deliver(events: Iterable[Event], *messages: Message) -> None:
    svc.delivery().deliver(tuple(events), messages)


# --- mentorship requests ------------------------------------------------------------


@router.post("/chat/requests", status_code=201, tags=["chat requests"])
def handle_send_request(body: RequestIn, user: CurrentPrincipal, deps: DepsDep) -> RequestOut:
    """Ask a mentor for mentorship, with a first message."""
    outcome = logic.send_request(deps, user.user_id, body.mentor_id, body.text)
    _deliver(outcome.events)
    return RequestOut.from_domain(outcome.value)


@router.get("/chat/requests", tags=["chat requests"])
def handle_list_requests(
    user: CurrentPrincipal,
    deps: DepsDep,
    box: RequestBox = RequestBox.INCOMING,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Requests to you (``incoming``, as a mentor) or from you (``outgoing``), newest first."""
    page = logic.list_requests(deps, user.user_id, box, limit, cursor)
    return {
        "items": [RequestOut.from_domain(r) for r in page.items],
        "next_cursor": page.next_cursor,
    }


@router.get("/chat/requests/{request_id}", tags=["chat requests"])
def handle_get_request(request_id: PathId, user: CurrentPrincipal, deps: DepsDep) -> RequestOut:
    """One request you sent or received."""
    return RequestOut.from_domain(logic.get_request(deps, user.user_id, request_id))


@router.post("/chat/requests/{request_id}/accept", tags=["chat requests"])
def handle_accept_request(
    request_id: PathId, user: CurrentPrincipal, deps: DepsDep
) -> dict[str, Any]:
    """Accept a request: the conversation opens with its first message."""
    accepted = logic.accept_request(deps, user.user_id, request_id)
    _deliver(accepted.events, accepted.message)
    return {
        "request": RequestOut.from_domain(accepted.request),
        "conversation": ConversationOut.from_domain(accepted.conversation),
        "message": ChatMessageOut.from_domain(accepted.message),
    }


@router.post("/chat/requests/{request_id}/decline", tags=["chat requests"])
def handle_decline_request(
    request_id: PathId, body: DeclineIn, user: CurrentPrincipal, deps: DepsDep
) -> RequestOut:
    """Decline a request, optionally saying why."""
    outcome = logic.decline_request(deps, user.user_id, request_id, body.reason)
    _deliver(outcome.events)
    return RequestOut.from_domain(outcome.value)


@router.post("/chat/requests/{request_id}/withdraw", tags=["chat requests"])
def handle_withdraw_request(
    request_id: PathId, user: CurrentPrincipal, deps: DepsDep
) -> RequestOut:
    """Withdraw a pending request you sent."""
    outcome = logic.withdraw_request(deps, user.user_id, request_id)
    _deliver(outcome.events)
    return RequestOut.from_domain(outcome.value)


# --- conversations --------------------------------------------------------------------


@router.get("/conversations", tags=["conversations"])
def handle_list_conversations(
    user: CurrentPrincipal, deps: DepsDep, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> dict[str, Any]:
    """Your conversations, most recent activity first, with unread counts."""
    page = logic.list_conversations(deps, user.user_id, limit, cursor)
    return {
        "items": [ConversationOut.from_summary(s) for s in page.items],
        "next_cursor": page.next_cursor,
    }


@router.post("/conversations/direct", tags=["conversations"])
def handle_open_direct(body: DirectIn, user: CurrentPrincipal, deps: DepsDep) -> ConversationOut:
    """Your one-to-one conversation with a user (opened if allowed, else the existing one)."""
    return ConversationOut.from_domain(logic.open_direct(deps, user.user_id, body.user_id))


@router.post("/conversations/groups", status_code=201, tags=["conversations"])
def handle_create_group(body: GroupIn, user: CurrentPrincipal, deps: DepsDep) -> ConversationOut:
    """Start a group conversation; you are its owner."""
    outcome = logic.create_group(deps, user.user_id, body.title, body.member_ids)
    _deliver(outcome.events)
    return ConversationOut.from_domain(outcome.value)


@router.get("/conversations/{conversation_id}", tags=["conversations"])
def handle_get_conversation(
    conversation_id: PathId, user: CurrentPrincipal, deps: DepsDep
) -> ConversationOut:
    """A conversation you belong to, with your unread count."""
    summary = logic.get_conversation(deps, user.user_id, conversation_id)
    return ConversationOut.from_summary(summary)


@router.get("/conversations/{conversation_id}/members", tags=["conversations"])
def handle_list_members(
    conversation_id: PathId, user: CurrentPrincipal, deps: DepsDep
) -> list[MemberOut]:
    """The members, longest-standing first, with their receipts."""
    return [
        MemberOut.from_domain(m) for m in logic.list_members(deps, user.user_id, conversation_id)
    ]


@router.post("/conversations/{conversation_id}/members", tags=["conversations"])
def handle_add_members(
    conversation_id: PathId, body: MembersIn, user: CurrentPrincipal, deps: DepsDep
) -> list[MemberOut]:
    """Add members to a group you own."""
    outcome = logic.add_members(deps, user.user_id, conversation_id, body.user_ids)
    _deliver(outcome.events)
    return [MemberOut.from_domain(m) for m in outcome.value]


@router.delete(
    "/conversations/{conversation_id}/members/{user_id}", status_code=204, tags=["conversations"]
)
def handle_remove_member(
    conversation_id: PathId, user_id: PathId, user: CurrentPrincipal, deps: DepsDep
) -> Response:
    """Remove a member from a group you own."""
    _deliver(logic.remove_member(deps, user.user_id, conversation_id, user_id).events)
    return Response(status_code=204)


@router.post("/conversations/{conversation_id}/leave", status_code=204, tags=["conversations"])
def handle_leave(conversation_id: PathId, user: CurrentPrincipal, deps: DepsDep) -> Response:
    """Leave a group (an owner hands the group to the longest-standing member)."""
    _deliver(logic.leave(deps, user.user_id, conversation_id).events)
    return Response(status_code=204)


# --- messages ---------------------------------------------------------------------------


@router.get("/conversations/{conversation_id}/messages", tags=["messages"])
def handle_list_messages(
    conversation_id: PathId,
    user: CurrentPrincipal,
    deps: DepsDep,
    before: MessageRef = None,
    after: MessageRef = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> ChatMessagePageOut:
    """History: the latest (or ``before=`` an id) newest first; ``after=`` an id oldest first."""
    page = logic.list_messages(
        deps, user.user_id, conversation_id, before=before, after=after, limit=limit
    )
    return ChatMessagePageOut.from_domain(page)


@router.post("/conversations/{conversation_id}/messages", status_code=201, tags=["messages"])
def handle_send_message(
    conversation_id: PathId,
    body: MessageIn,
    user: CurrentPrincipal,
    deps: DepsDep,
    response: Response,
) -> ChatMessageOut:
    """Send a message; with ``client_message_id`` a resend answers 200 with the stored one."""
    sent = logic.send_message(
        deps,
        user.user_id,
        conversation_id,
        body.text,
        client_message_id=body.client_message_id,
        reply_to=body.reply_to,
        attachments=[a.to_domain() for a in body.attachments],
    )
    if not sent.created:
        response.status_code = 200
    _deliver(sent.events, sent.message)
    return ChatMessageOut.from_domain(sent.message)


@router.patch("/conversations/{conversation_id}/messages/{message_id}", tags=["messages"])
def handle_edit_message(
    conversation_id: PathId, message_id: PathId, body: EditIn, user: CurrentPrincipal, deps: DepsDep
) -> ChatMessageOut:
    """Edit your message."""
    outcome = logic.edit_message(deps, user.user_id, conversation_id, message_id, body.text)
    _deliver(outcome.events, outcome.value)
    return ChatMessageOut.from_domain(outcome.value)


@router.delete("/conversations/{conversation_id}/messages/{message_id}", tags=["messages"])
def handle_delete_message(
    conversation_id: PathId, message_id: PathId, user: CurrentPrincipal, deps: DepsDep
) -> ChatMessageOut:
    """Delete your message: it stays in place as a tombstone."""
    outcome = logic.delete_message(deps, user.user_id, conversation_id, message_id)
    _deliver(outcome.events, outcome.value)
    return ChatMessageOut.from_domain(outcome.value)


@router.post("/conversations/{conversation_id}/messages/{message_id}/reactions", tags=["messages"])
def handle_toggle_reaction(
    conversation_id: PathId,
    message_id: PathId,
    body: ReactionIn,
    user: CurrentPrincipal,
    deps: DepsDep,
) -> ChatMessageOut:
    """Add your reaction, or take it back if you already reacted so."""
    outcome = logic.toggle_reaction(deps, user.user_id, conversation_id, message_id, body.emoji)
    _deliver(outcome.events, outcome.value)
    return ChatMessageOut.from_domain(outcome.value)


@router.post("/conversations/{conversation_id}/read", tags=["messages"])
def handle_mark_read(
    conversation_id: PathId, body: ReceiptIn, user: CurrentPrincipal, deps: DepsDep
) -> MemberOut:
    """Move your read receipt up to a message (never backwards)."""
    outcome = logic.mark_read(deps, user.user_id, conversation_id, body.up_to_message_id)
    _deliver(outcome.events)
    return MemberOut.from_domain(outcome.value)


# --- attachments ----------------------------------------------------------------------


@router.post("/conversations/{conversation_id}/attachments", status_code=201, tags=["messages"])
def handle_start_upload(
    conversation_id: PathId, body: UploadIn, user: CurrentPrincipal, deps: DepsDep
) -> UploadOut:
    """Get a form to upload one file straight to storage, then send it in a message.

    The form accepts exactly the declared type and size, for 15 minutes.
    """
    ticket = logic.start_upload(
        deps, user.user_id, conversation_id, body.content_type, body.size, body.name
    )
    return UploadOut.from_domain(ticket)


@router.get("/conversations/{conversation_id}/attachments/{attachment_id}", tags=["messages"])
def handle_download(
    conversation_id: PathId, attachment_id: PathId, user: CurrentPrincipal, deps: DepsDep
) -> DownloadOut:
    """A link to download an attachment, valid for 5 minutes."""
    url, expires_at = logic.download_url(deps, user.user_id, conversation_id, attachment_id)
    return DownloadOut(url=url, expires_at=expires_at)


# --- settings and blocks --------------------------------------------------------------


@router.get("/chat/settings", tags=["chat settings"])
def handle_get_settings(user: CurrentPrincipal, deps: DepsDep) -> dict[str, Any]:
    """Whether anyone may message you, and how long your requests stay open."""
    s = logic.get_settings(deps, user.user_id)
    return {"open_to_all": s.open_to_all, "request_ttl_days": s.request_ttl_days}


@router.patch("/chat/settings", tags=["chat settings"])
def handle_update_settings(
    body: SettingsIn, user: CurrentPrincipal, deps: DepsDep
) -> dict[str, Any]:
    """Change your chat settings."""
    s = logic.update_settings(
        deps, user.user_id, open_to_all=body.open_to_all, request_ttl_days=body.request_ttl_days
    )
    return {"open_to_all": s.open_to_all, "request_ttl_days": s.request_ttl_days}


@router.get("/chat/blocks", tags=["chat settings"])
def handle_list_blocks(user: CurrentPrincipal, deps: DepsDep) -> list[dict[str, Any]]:
    """The users you blocked."""
    return [
        {"user_id": b.blocked_id, "created_at": b.created_at.isoformat()}
        for b in logic.list_blocks(deps, user.user_id)
    ]


@router.put("/chat/blocks/{user_id}", status_code=204, tags=["chat settings"])
def handle_block(user_id: PathId, user: CurrentPrincipal, deps: DepsDep) -> Response:
    """Block a user: neither of you can message the other in private or send requests."""
    logic.block_user(deps, user.user_id, user_id)
    return Response(status_code=204)


@router.delete("/chat/blocks/{user_id}", status_code=204, tags=["chat settings"])
def handle_unblock(user_id: PathId, user: CurrentPrincipal, deps: DepsDep) -> Response:
    """Lift a block."""
    logic.unblock_user(deps, user.user_id, user_id)
    return Response(status_code=204)


app = create_app(
    title="LinkWithMentor chat API",
    version="1.0.0",
    description="Mentorship requests, conversations, messages, receipts and blocks.",
    routers=[router],
)
