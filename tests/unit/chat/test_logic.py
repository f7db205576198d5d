"""The chat business rules (``functions.chat.logic``) over the in-memory fakes."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from functions.chat import errors, logic
from functions.chat.domain import (
    Attachment,
    Conversation,
    ConversationKind,
    DirectReason,
    MemberRole,
    MembershipChanged,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    ReactionToggled,
    ReceiptMoved,
    RequestAnswered,
    RequestBox,
    RequestSent,
    RequestStatus,
)
from lwm_core.errors import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ProblemError,
    RequestValidationError,
)

from .fakes import FakeWorld

MENTEE, MENTOR, OTHER, CAROL = "u-mentee", "u-mentor", "u-other", "u-carol"


# --- helpers ---------------------------------------------------------------------------


def direct(world: FakeWorld, a: str = MENTEE, b: str = MENTOR) -> Conversation:
    return logic.open_direct(world.deps, a, b, allow_direct=True)


def group(world: FakeWorld, owner: str = MENTOR, *members: str) -> Conversation:
    return logic.create_group(world.deps, owner, "Python cohort", members or (MENTEE, OTHER)).value


def say(world: FakeWorld, author: str, conversation_id: str, text: str = "hi", **kw: object) -> str:
    return logic.send_message(world.deps, author, conversation_id, text, **kw).message.id  # type: ignore[arg-type]


def attachment(conversation_id: str, **kw: object) -> Attachment:
    base: dict[str, object] = {
        "key": f"chat/{conversation_id}/cv.pdf",
        "content_type": "application/pdf",
        "size": 1000,
    }
    return Attachment(**{**base, **kw})  # type: ignore[arg-type]


# --- settings and blocks ---------------------------------------------------------------


def test_settings_default_and_partial_update(world: FakeWorld) -> None:
    # Given a mentor who never set chat settings
    assert logic.get_settings(world.deps, MENTOR).request_ttl_days == 7
    # When they open up to everyone, then change only the ttl
    logic.update_settings(world.deps, MENTOR, open_to_all=True)
    updated = logic.update_settings(world.deps, MENTOR, request_ttl_days=3)
    # Then both changes are kept
    assert (updated.open_to_all, updated.request_ttl_days) == (True, 3)


@pytest.mark.parametrize("ttl", [0, 31, -1])
def test_settings_reject_ttl_out_of_range(world: FakeWorld, ttl: int) -> None:
    with pytest.raises(errors.InvalidSettingsError) as e:
        logic.update_settings(world.deps, MENTOR, request_ttl_days=ttl)
    assert e.value.code == "invalid_settings" and isinstance(e.value, RequestValidationError)


def test_block_is_idempotent_and_unblock_lifts_it(world: FakeWorld) -> None:
    # Given a block
    first = logic.block_user(world.deps, MENTOR, MENTEE)
    # When blocking again
    again = logic.block_user(world.deps, MENTOR, MENTEE)
    # Then the same block is returned, listed once, and unblocking lifts it
    assert again == first
    assert [b.blocked_id for b in logic.list_blocks(world.deps, MENTOR)] == [MENTEE]
    logic.unblock_user(world.deps, MENTOR, MENTEE)
    logic.unblock_user(world.deps, MENTOR, MENTEE)
    assert logic.list_blocks(world.deps, MENTOR) == []


def test_cannot_block_yourself(world: FakeWorld) -> None:
    with pytest.raises(errors.SelfTargetError):
        logic.block_user(world.deps, MENTOR, MENTOR)


# --- mentorship requests ---------------------------------------------------------------


def test_request_expires_after_the_mentors_ttl(world: FakeWorld) -> None:
    # Given a mentor whose requests expire after 3 days
    logic.update_settings(world.deps, MENTOR, request_ttl_days=3)
    # When a mentee sends a request
    out = logic.send_request(world.deps, MENTEE, MENTOR, "  Could you help me with <b>AWS</b>?  ")
    # Then it is pending, sanitized, expires in 3 days and announces itself
    req = out.value
    assert req.status is RequestStatus.PENDING
    assert req.text == "Could you help me with AWS?"
    assert req.expires_at == world.clock.now + timedelta(days=3)
    assert out.events == (RequestSent(req.id, MENTEE, MENTOR, req.expires_at),)


def test_request_default_ttl_is_seven_days(world: FakeWorld) -> None:
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    assert req.expires_at - req.created_at == timedelta(days=7)


def test_one_pending_request_per_pair(world: FakeWorld) -> None:
    # Given a pending request
    logic.send_request(world.deps, MENTEE, MENTOR, "hello")
    # When the mentee sends another to the same mentor
    with pytest.raises(errors.RequestPendingError) as e:
        logic.send_request(world.deps, MENTEE, MENTOR, "hello again")
    # Then it is a conflict; another mentor is fine
    assert e.value.code == "request_pending" and isinstance(e.value, ConflictError)
    logic.send_request(world.deps, MENTEE, OTHER, "hello")


def test_expired_request_frees_the_pair(world: FakeWorld) -> None:
    # Given a request left unanswered past its ttl
    old = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    world.clock.advance(days=7)
    # When the mentee sends a new one
    new = logic.send_request(world.deps, MENTEE, MENTOR, "second try").value
    # Then the old one is stored as expired and the new one is pending
    assert world.db.requests[old.id].status is RequestStatus.EXPIRED
    assert logic.get_request(world.deps, MENTEE, new.id).status is RequestStatus.PENDING


def test_expired_request_cannot_be_accepted(world: FakeWorld) -> None:
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    world.clock.advance(days=7, seconds=1)
    # When the mentor answers too late
    with pytest.raises(errors.RequestNotPendingError):
        logic.accept_request(world.deps, MENTOR, req.id)
    # Then it reads as expired to both parties
    assert logic.get_request(world.deps, MENTEE, req.id).status is RequestStatus.EXPIRED
    page = logic.list_requests(world.deps, MENTOR, RequestBox.INCOMING)
    assert [r.status for r in page.items] == [RequestStatus.EXPIRED]


@pytest.mark.parametrize("blocker,blocked", [(MENTOR, MENTEE), (MENTEE, MENTOR)])
def test_blocked_pairs_cannot_send_requests(world: FakeWorld, blocker: str, blocked: str) -> None:
    logic.block_user(world.deps, blocker, blocked)
    with pytest.raises(errors.BlockedError) as e:
        logic.send_request(world.deps, MENTEE, MENTOR, "hello")
    assert e.value.code == "blocked" and isinstance(e.value, ForbiddenError)


def test_request_to_yourself_is_refused(world: FakeWorld) -> None:
    with pytest.raises(errors.SelfTargetError):
        logic.send_request(world.deps, MENTEE, MENTEE, "hello")


def test_request_needs_a_message(world: FakeWorld) -> None:
    with pytest.raises(errors.InvalidMessageError):
        logic.send_request(world.deps, MENTEE, MENTOR, "   ")


def test_accept_opens_the_conversation_with_the_first_message(world: FakeWorld) -> None:
    # Given a pending request
    req = logic.send_request(world.deps, MENTEE, MENTOR, "Can you mentor me?").value
    world.clock.advance(hours=1)
    # When the mentor accepts
    out = logic.accept_request(world.deps, MENTOR, req.id)
    # Then a direct conversation holds the request text as the mentee's message
    conv = out.conversation
    assert conv.kind is ConversationKind.DIRECT
    assert conv.direct_reason is DirectReason.ACCEPTED_REQUEST
    assert [(m.author_id, m.text) for m in world.messages(conv.id)] == [
        (MENTEE, "Can you mentor me?")
    ]
    assert out.request.status is RequestStatus.ACCEPTED
    assert out.request.conversation_id == conv.id
    assert out.request.answered_at == world.clock.now
    # And the mentor sees one unread message, and both parties get events
    assert logic.get_conversation(world.deps, MENTOR, conv.id).unread == 1
    answered, posted = out.events
    assert answered == RequestAnswered(req.id, MENTEE, MENTOR, RequestStatus.ACCEPTED, conv.id)
    assert isinstance(posted, MessagePosted) and set(posted.member_ids) == {MENTEE, MENTOR}


def test_accept_reuses_an_existing_direct_conversation(world: FakeWorld) -> None:
    # Given a request, then a booking that opened the direct conversation
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    conv = direct(world)
    # When the mentor accepts
    out = logic.accept_request(world.deps, MENTOR, req.id)
    # Then the same conversation is used and holds the message
    assert out.conversation.id == conv.id
    assert len(world.db.conversations) == 1
    assert [m.text for m in world.messages(conv.id)] == ["hello"]


def test_accept_survives_a_concurrent_direct_conversation(world: FakeWorld) -> None:
    # Given a request, and a booking that opens the pair's conversation mid-accept
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    world.uows.before_next_commit(lambda: direct(world))
    # When the mentor accepts
    out = logic.accept_request(world.deps, MENTOR, req.id)
    # Then there is still one conversation, holding the message once
    assert len(world.db.conversations) == 1
    assert [m.text for m in world.messages(out.conversation.id)] == ["hello"]


def test_only_the_mentor_answers(world: FakeWorld) -> None:
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    with pytest.raises(errors.NotRequestRecipientError):
        logic.accept_request(world.deps, MENTEE, req.id)
    with pytest.raises(errors.NotRequestRecipientError):
        logic.decline_request(world.deps, MENTEE, req.id)
    # A stranger does not learn the request exists
    with pytest.raises(errors.RequestNotFoundError) as e:
        logic.accept_request(world.deps, OTHER, req.id)
    assert isinstance(e.value, NotFoundError)
    with pytest.raises(errors.RequestNotFoundError):
        logic.get_request(world.deps, OTHER, req.id)


def test_accepting_twice_is_a_conflict(world: FakeWorld) -> None:
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    logic.accept_request(world.deps, MENTOR, req.id)
    with pytest.raises(errors.RequestNotPendingError):
        logic.accept_request(world.deps, MENTOR, req.id)
    assert len(world.db.messages) == 1


def test_accept_refused_when_blocked(world: FakeWorld) -> None:
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    logic.block_user(world.deps, MENTEE, MENTOR)
    with pytest.raises(errors.BlockedError):
        logic.accept_request(world.deps, MENTOR, req.id)
    assert world.db.conversations == {}


def test_after_acceptance_a_new_request_is_pointless(world: FakeWorld) -> None:
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    logic.accept_request(world.deps, MENTOR, req.id)
    with pytest.raises(errors.AlreadyConnectedError):
        logic.send_request(world.deps, MENTEE, MENTOR, "hello again")


def test_decline_with_a_sanitized_reason(world: FakeWorld) -> None:
    # Given a pending request
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    # When the mentor declines with a reason
    out = logic.decline_request(world.deps, MENTOR, req.id, "Fully <i>booked</i> until May")
    # Then it is declined, the reason kept as safe text, the pair free again
    assert out.value.status is RequestStatus.DECLINED
    assert out.value.decline_reason == "Fully booked until May"
    assert out.events == (RequestAnswered(req.id, MENTEE, MENTOR, RequestStatus.DECLINED),)
    logic.send_request(world.deps, MENTEE, MENTOR, "maybe in May?")


def test_decline_reason_is_limited(world: FakeWorld) -> None:
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    with pytest.raises(errors.InvalidReasonError):
        logic.decline_request(world.deps, MENTOR, req.id, "x" * 501)
    assert logic.decline_request(world.deps, MENTOR, req.id, "  ").value.decline_reason is None


def test_mentee_withdraws_a_pending_request(world: FakeWorld) -> None:
    req = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    with pytest.raises(errors.NotRequestSenderError):
        logic.withdraw_request(world.deps, MENTOR, req.id)
    out = logic.withdraw_request(world.deps, MENTEE, req.id)
    assert out.value.status is RequestStatus.WITHDRAWN
    with pytest.raises(errors.RequestNotPendingError):
        logic.accept_request(world.deps, MENTOR, req.id)


def test_list_requests_by_box_newest_first_in_pages(world: FakeWorld) -> None:
    # Given three mentees asking the same mentor
    ids = [logic.send_request(world.deps, u, MENTOR, "hi").value.id for u in ("a", "b", "c")]
    # When the mentor pages through incoming requests two at a time
    first = logic.list_requests(world.deps, MENTOR, RequestBox.INCOMING, limit=2)
    assert first.next_cursor is not None
    second = logic.list_requests(world.deps, MENTOR, RequestBox.INCOMING, 2, first.next_cursor)
    # Then they come newest first, each once; the mentee sees theirs as outgoing
    assert [r.id for r in first.items + second.items] == ids[::-1]
    assert second.next_cursor is None
    assert [r.id for r in logic.list_requests(world.deps, "a", RequestBox.OUTGOING).items] == [
        ids[0]
    ]
    assert logic.list_requests(world.deps, "a", RequestBox.INCOMING).items == []


# --- direct conversations --------------------------------------------------------------


def test_direct_needs_a_reason(world: FakeWorld) -> None:
    with pytest.raises(errors.DirectNotAllowedError) as e:
        logic.open_direct(world.deps, MENTEE, MENTOR)
    assert e.value.code == "direct_not_allowed"


def test_direct_with_a_mentor_open_to_all_is_one_per_pair(world: FakeWorld) -> None:
    # Given a mentor open to all
    logic.update_settings(world.deps, MENTOR, open_to_all=True)
    # When the mentee opens the conversation twice, and the mentor opens it back
    first = logic.open_direct(world.deps, MENTEE, MENTOR)
    again = logic.open_direct(world.deps, MENTEE, MENTOR)
    back = logic.open_direct(world.deps, MENTOR, MENTEE)
    # Then it is the same conversation of exactly those two
    assert first.id == again.id == back.id
    assert first.direct_reason is DirectReason.OPEN_TO_ALL
    members = logic.list_members(world.deps, MENTEE, first.id)
    assert {m.user_id for m in members} == {MENTEE, MENTOR}


def test_direct_from_a_booking(world: FakeWorld) -> None:
    assert direct(world).direct_reason is DirectReason.BOOKING


def test_direct_race_yields_one_conversation(world: FakeWorld) -> None:
    # Given the other user opening the same pair just before our commit
    world.uows.before_next_commit(lambda: direct(world, MENTOR, MENTEE))
    # When we open it
    conv = direct(world)
    # Then both see the one conversation
    assert list(world.db.conversations) == [conv.id]


def test_direct_refused_when_blocked(world: FakeWorld) -> None:
    logic.block_user(world.deps, MENTOR, MENTEE)
    with pytest.raises(errors.BlockedError):
        direct(world)


def test_direct_with_yourself_is_refused(world: FakeWorld) -> None:
    with pytest.raises(errors.SelfTargetError):
        direct(world, MENTEE, MENTEE)


# --- groups -------------------------------------------------------------------------------


def test_create_group_with_roles(world: FakeWorld) -> None:
    out = logic.create_group(world.deps, MENTOR, " <b>Cohort</b> 1 ", [MENTEE, OTHER])
    conv = out.value
    assert conv.kind is ConversationKind.GROUP and conv.title == "Cohort 1"
    roles = {m.user_id: m.role for m in logic.list_members(world.deps, OTHER, conv.id)}
    assert roles == {MENTOR: MemberRole.OWNER, MENTEE: MemberRole.MEMBER, OTHER: MemberRole.MEMBER}
    assert out.events == (
        MembershipChanged(
            conv.id, added=(MENTOR, MENTEE, OTHER), member_ids=(MENTOR, MENTEE, OTHER)
        ),
    )


@pytest.mark.parametrize(
    "members", [[], [MENTOR], [MENTEE, MENTEE]], ids=["empty", "owner", "duplicate"]
)
def test_create_group_rejects_bad_members(world: FakeWorld, members: list[str]) -> None:
    with pytest.raises(errors.InvalidMembersError):
        logic.create_group(world.deps, MENTOR, "Cohort", members)


@pytest.mark.parametrize("title", ["", "   ", "<b></b>", "x" * 101])
def test_create_group_rejects_bad_titles(world: FakeWorld, title: str) -> None:
    with pytest.raises(errors.InvalidTitleError):
        logic.create_group(world.deps, MENTOR, title, [MENTEE])


def test_group_size_is_limited(world: FakeWorld) -> None:
    world.deps = replace(world.deps, config=replace(world.config, max_group_members=3))
    conv = logic.create_group(world.deps, MENTOR, "Trio", [MENTEE, OTHER]).value
    with pytest.raises(errors.GroupFullError):
        logic.add_members(world.deps, MENTOR, conv.id, [CAROL])
    with pytest.raises(errors.GroupFullError):
        logic.create_group(world.deps, MENTOR, "Quartet", [MENTEE, OTHER, CAROL])


def test_owner_adds_members_who_start_with_nothing_unread(world: FakeWorld) -> None:
    # Given a group with history
    conv = group(world)
    say(world, MENTEE, conv.id, "earlier")
    # When the owner adds Carol
    out = logic.add_members(world.deps, MENTOR, conv.id, [CAROL])
    # Then Carol is a member who can read the history but has nothing unread
    assert [m.user_id for m in out.value] == [CAROL]
    assert logic.get_conversation(world.deps, CAROL, conv.id).unread == 0
    page = logic.list_messages(world.deps, CAROL, conv.id)
    assert [m.text for m in page.items] == ["earlier"]
    assert isinstance(out.events[0], MembershipChanged) and CAROL in out.events[0].member_ids


def test_only_the_owner_changes_members(world: FakeWorld) -> None:
    conv = group(world)
    with pytest.raises(errors.NotGroupOwnerError):
        logic.add_members(world.deps, MENTEE, conv.id, [CAROL])
    with pytest.raises(errors.NotGroupOwnerError):
        logic.remove_member(world.deps, MENTEE, conv.id, OTHER)
    with pytest.raises(errors.NotGroupOwnerError):
        logic.rename_group(world.deps, MENTEE, conv.id, "Mine now")
    with pytest.raises(errors.AlreadyMemberError):
        logic.add_members(world.deps, MENTOR, conv.id, [OTHER])


def test_owner_renames_the_group(world: FakeWorld) -> None:
    conv = group(world)
    assert logic.rename_group(world.deps, MENTOR, conv.id, "Cohort 2").title == "Cohort 2"


def test_removed_member_loses_access(world: FakeWorld) -> None:
    conv = group(world)
    out = logic.remove_member(world.deps, MENTOR, conv.id, OTHER)
    assert out.events == (
        MembershipChanged(conv.id, removed=(OTHER,), member_ids=(MENTEE, MENTOR)),
    )
    with pytest.raises(errors.ConversationNotFoundError):
        logic.list_messages(world.deps, OTHER, conv.id)
    with pytest.raises(errors.MemberNotFoundError):
        logic.remove_member(world.deps, MENTOR, conv.id, OTHER)
    with pytest.raises(errors.InvalidMembersError):
        logic.remove_member(world.deps, MENTOR, conv.id, MENTOR)


def test_owner_leaving_hands_over_to_the_longest_standing_member(world: FakeWorld) -> None:
    # Given a group where Carol joined later than the mentee and the other user
    conv = logic.create_group(world.deps, MENTOR, "Cohort", [OTHER, MENTEE]).value
    world.clock.advance(days=1)
    logic.add_members(world.deps, MENTOR, conv.id, [CAROL])
    # When the owner leaves
    out = logic.leave(world.deps, MENTOR, conv.id)
    # Then the earliest member (ties broken by id) owns the group
    heir = min(MENTEE, OTHER)
    assert out.events[0] == MembershipChanged(
        conv.id, removed=(MENTOR,), new_owner_id=heir, member_ids=(MENTEE, OTHER, CAROL)
    )
    member = world.member(conv.id, heir)
    assert member is not None and member.role is MemberRole.OWNER
    # And the new owner can add members
    logic.add_members(world.deps, heir, conv.id, [MENTOR])


def test_member_leaves_without_ownership_changing(world: FakeWorld) -> None:
    conv = group(world)
    out = logic.leave(world.deps, MENTEE, conv.id)
    assert out.events[0] == MembershipChanged(
        conv.id, removed=(MENTEE,), member_ids=(MENTOR, OTHER)
    )
    with pytest.raises(errors.ConversationNotFoundError):
        logic.leave(world.deps, MENTEE, conv.id)


def test_direct_conversation_cannot_be_left(world: FakeWorld) -> None:
    conv = direct(world)
    with pytest.raises(errors.NotAGroupError):
        logic.leave(world.deps, MENTEE, conv.id)
    with pytest.raises(errors.NotAGroupError):
        logic.add_members(world.deps, MENTEE, conv.id, [OTHER])


def test_non_members_cannot_tell_a_conversation_exists(world: FakeWorld) -> None:
    conv = direct(world)
    for action in (
        lambda: logic.list_messages(world.deps, OTHER, conv.id),
        lambda: logic.send_message(world.deps, OTHER, conv.id, "let me in"),
        lambda: logic.get_conversation(world.deps, OTHER, conv.id),
        lambda: logic.list_members(world.deps, OTHER, conv.id),
        lambda: logic.list_messages(world.deps, MENTEE, "no-such-conversation"),
    ):
        with pytest.raises(errors.ConversationNotFoundError) as e:
            action()
        assert e.value.code == "conversation_not_found" and e.value.status == 404


# --- messages ------------------------------------------------------------------------------


def test_the_audience_of_a_new_message_is_told_before_it_commits(world: FakeWorld) -> None:
    conv = group(world, MENTOR, MENTEE, OTHER)
    told: list[tuple[tuple[str, ...], int]] = []

    def audience(members: tuple[str, ...]) -> None:  # what is stored when delivery is told
        told.append((tuple(sorted(members)), len(world.messages(conv.id))))

    kw = {"client_message_id": "c-1", "on_audience": audience}
    logic.send_message(world.deps, MENTEE, conv.id, "hi", **kw)  # type: ignore[arg-type]
    assert told == [(tuple(sorted((MENTOR, MENTEE, OTHER))), 0)]  # all, before the commit


def test_send_message_sanitizes_into_an_html_safe_fragment(world: FakeWorld) -> None:
    # Given a direct conversation
    conv = direct(world)
    # When markup and HTML-special characters are sent
    out = logic.send_message(
        world.deps, MENTEE, conv.id, "  <script>alert(1)</script>a <b>b</b> & c < d  "
    )
    # Then tags are stripped, specials escaped, and the post is announced to both
    assert out.created and out.message.text == "a b &amp; c &lt; d"
    (event,) = out.events
    assert isinstance(event, MessagePosted)
    assert (event.conversation_id, event.message_id, event.author_id) == (
        conv.id,
        out.message.id,
        MENTEE,
    )
    assert set(event.member_ids) == {MENTEE, MENTOR}


@pytest.mark.parametrize(
    "text",
    ["", "   \n ", "<b></b>", "x" * 4001, "a\x00b"],
    ids=["empty", "blank", "tags", "long", "nul"],
)
def test_send_message_rejects_bad_text(world: FakeWorld, text: str) -> None:
    conv = direct(world)
    with pytest.raises(errors.InvalidMessageError) as e:
        logic.send_message(world.deps, MENTEE, conv.id, text)
    assert e.value.code == "invalid_message"
    assert world.messages(conv.id) == []


def test_send_message_accepts_the_limit(world: FakeWorld) -> None:
    conv = direct(world)
    assert len(logic.send_message(world.deps, MENTEE, conv.id, "x" * 4000).message.text) == 4000


def test_resend_with_the_same_client_id_returns_the_stored_message(world: FakeWorld) -> None:
    # Given a message sent with a client id
    conv = direct(world)
    first = logic.send_message(world.deps, MENTEE, conv.id, "hi", client_message_id="c-1")
    # When the client resends it (a retry after a lost reply)
    again = logic.send_message(world.deps, MENTEE, conv.id, "hi", client_message_id="c-1")
    # Then the same message comes back, not created, without events, stored once
    assert (again.message, again.created, again.events) == (first.message, False, ())
    assert len(world.messages(conv.id)) == 1
    # And the same client id from another author is another message
    other = logic.send_message(world.deps, MENTOR, conv.id, "hi", client_message_id="c-1")
    assert other.created


def test_concurrent_resend_returns_the_winner(world: FakeWorld) -> None:
    # Given a duplicate of our send committing just before ours
    conv = direct(world)
    winner: list[logic.SendResult] = []
    world.uows.before_next_commit(
        lambda: winner.append(
            logic.send_message(world.deps, MENTEE, conv.id, "hi", client_message_id="c-1")
        )
    )
    # When we send
    out = logic.send_message(world.deps, MENTEE, conv.id, "hi", client_message_id="c-1")
    # Then we get the winner's message and nothing is stored twice
    assert out.created is False and out.message == winner[0].message
    assert len(world.messages(conv.id)) == 1


def test_client_id_reused_in_another_conversation(world: FakeWorld) -> None:
    conv, other = direct(world), group(world)
    logic.send_message(world.deps, MENTEE, conv.id, "hi", client_message_id="c-1")
    with pytest.raises(errors.ClientMessageIdReusedError):
        logic.send_message(world.deps, MENTEE, other.id, "hi", client_message_id="c-1")


@pytest.mark.parametrize("cid", ["", "has space", "x" * 65, "a:b"])
def test_client_id_is_validated(world: FakeWorld, cid: str) -> None:
    conv = direct(world)
    with pytest.raises(errors.InvalidMessageError):
        logic.send_message(world.deps, MENTEE, conv.id, "hi", client_message_id=cid)


def test_replies_stay_within_the_conversation(world: FakeWorld) -> None:
    conv, elsewhere = direct(world), group(world)
    target = say(world, MENTOR, conv.id, "question?")
    foreign = say(world, MENTOR, elsewhere.id, "other")
    # A reply to a message here is kept
    reply = logic.send_message(world.deps, MENTEE, conv.id, "answer", reply_to=target)
    assert reply.message.reply_to == target
    assert isinstance(reply.events[0], MessagePosted) and reply.events[0].reply_to == target
    # A reply to another conversation's message is not found; to a deleted one, refused
    with pytest.raises(errors.MessageNotFoundError):
        logic.send_message(world.deps, MENTEE, conv.id, "answer", reply_to=foreign)
    logic.delete_message(world.deps, MENTOR, conv.id, target)
    with pytest.raises(errors.MessageDeletedError):
        logic.send_message(world.deps, MENTEE, conv.id, "answer", reply_to=target)


def test_blocked_pair_cannot_message_in_direct(world: FakeWorld) -> None:
    # Given a direct conversation and a group of the same people
    conv, grp = direct(world), group(world)
    msg = say(world, MENTOR, conv.id)
    logic.block_user(world.deps, MENTOR, MENTEE)
    # When either writes in the direct conversation, it is refused
    for author in (MENTEE, MENTOR):
        with pytest.raises(errors.BlockedError):
            logic.send_message(world.deps, author, conv.id, "hi")
    with pytest.raises(errors.BlockedError):
        logic.toggle_reaction(world.deps, MENTEE, conv.id, msg, "👍")
    # But the group is unaffected, and unblocking restores the direct one
    say(world, MENTEE, grp.id)
    logic.unblock_user(world.deps, MENTOR, MENTEE)
    say(world, MENTEE, conv.id)


def test_edit_by_the_author_updates_text_and_preview(world: FakeWorld) -> None:
    conv = direct(world)
    msg = say(world, MENTEE, conv.id, "helo")
    world.clock.advance(minutes=1)
    out = logic.edit_message(world.deps, MENTEE, conv.id, msg, "hello <i>there</i>")
    assert (out.value.text, out.value.edited_at) == ("hello there", world.clock.now)
    assert out.events == (MessageEdited(conv.id, msg, MENTEE, (MENTEE, MENTOR), world.clock.now),)
    summary = logic.get_conversation(world.deps, MENTOR, conv.id)
    assert summary.last_message is not None and summary.last_message.text == "hello there"


def test_only_the_author_edits_or_deletes(world: FakeWorld) -> None:
    conv = direct(world)
    msg = say(world, MENTEE, conv.id)
    with pytest.raises(errors.NotMessageAuthorError):
        logic.edit_message(world.deps, MENTOR, conv.id, msg, "mine now")
    with pytest.raises(errors.NotMessageAuthorError):
        logic.delete_message(world.deps, MENTOR, conv.id, msg)
    with pytest.raises(errors.MessageNotFoundError):
        logic.edit_message(world.deps, MENTEE, conv.id, "no-such-message", "x")


def uploaded(world: FakeWorld, user: str, conversation_id: str, name: str = "CV.pdf") -> Attachment:
    """An attachment as a client gets it: a form from the logic, then the upload to it."""
    ticket = logic.start_upload(world.deps, user, conversation_id, "application/pdf", 1000, name)
    world.attachments.upload(ticket.attachment.key, b"%" * 1000, "application/pdf")
    return ticket.attachment


def test_delete_leaves_a_tombstone_in_order(world: FakeWorld) -> None:
    # Given three messages, the middle one with an attachment and a reaction
    conv = direct(world)
    a = say(world, MENTEE, conv.id, "one")
    file = uploaded(world, MENTEE, conv.id)
    b = logic.send_message(world.deps, MENTEE, conv.id, "two", attachments=[file]).message.id
    logic.toggle_reaction(world.deps, MENTOR, conv.id, b, "👍")
    c = say(world, MENTEE, conv.id, "three")
    # When the middle one is deleted
    out = logic.delete_message(world.deps, MENTEE, conv.id, b)
    # Then it stays in place, emptied, and no longer counts as unread
    assert out.events == (MessageDeleted(conv.id, b, MENTEE, (MENTEE, MENTOR), world.clock.now),)
    page = logic.list_messages(world.deps, MENTOR, conv.id)
    assert [m.id for m in page.items] == [c, b, a]
    tomb = page.items[1]
    assert (tomb.text, tomb.attachments, tomb.reactions, tomb.deleted) == ("", [], {}, True)
    assert logic.get_conversation(world.deps, MENTOR, conv.id).unread == 2
    # And it can no longer be edited, deleted or reacted to
    with pytest.raises(errors.MessageDeletedError):
        logic.edit_message(world.deps, MENTEE, conv.id, b, "again")
    with pytest.raises(errors.MessageDeletedError):
        logic.delete_message(world.deps, MENTEE, conv.id, b)
    with pytest.raises(errors.MessageDeletedError):
        logic.toggle_reaction(world.deps, MENTOR, conv.id, b, "👍")
    # And its file is gone from storage
    assert world.attachments.describe(file.key) is None


def test_deleting_the_last_message_updates_the_preview(world: FakeWorld) -> None:
    conv = direct(world)
    msg = say(world, MENTEE, conv.id, "oops")
    logic.delete_message(world.deps, MENTEE, conv.id, msg)
    preview = logic.get_conversation(world.deps, MENTOR, conv.id).last_message
    assert preview is not None and preview.deleted and preview.text == ""


def test_reactions_toggle_per_user(world: FakeWorld) -> None:
    conv = direct(world)
    msg = say(world, MENTEE, conv.id)
    # When both react with 👍 and the mentor toggles it again
    logic.toggle_reaction(world.deps, MENTOR, conv.id, msg, "👍")
    logic.toggle_reaction(world.deps, MENTEE, conv.id, msg, "👍")
    out = logic.toggle_reaction(world.deps, MENTOR, conv.id, msg, "👍")
    # Then only the mentee's reaction remains
    assert out.value.reactions == {"👍": {MENTEE}}
    assert out.events == (ReactionToggled(conv.id, msg, MENTOR, "👍", False, (MENTEE, MENTOR)),)
    logic.toggle_reaction(world.deps, MENTEE, conv.id, msg, "👍")
    assert world.messages(conv.id)[0].reactions == {}


@pytest.mark.parametrize("emoji", ["🦄", "👍🏽", "👩‍💻", "🇩🇪", "1️⃣", "❤️", "👨‍👩‍👧‍👦"])
def test_any_single_emoji_is_a_reaction(world: FakeWorld, emoji: str) -> None:
    conv = direct(world)
    msg = say(world, MENTEE, conv.id)
    assert emoji in logic.toggle_reaction(world.deps, MENTOR, conv.id, msg, emoji).value.reactions


@pytest.mark.parametrize("emoji", ["", "a", "ok", "👍👍", "👍 ", "<b>", "🇩🇪🇩🇪", "‍👍"])
def test_other_reactions_are_rejected(world: FakeWorld, emoji: str) -> None:
    conv = direct(world)
    msg = say(world, MENTEE, conv.id)
    with pytest.raises(errors.InvalidReactionError):
        logic.toggle_reaction(world.deps, MENTOR, conv.id, msg, emoji)


def test_attachments_are_references_and_text_may_be_empty(world: FakeWorld) -> None:
    conv = direct(world)
    att = uploaded(world, MENTEE, conv.id)
    out = logic.send_message(world.deps, MENTEE, conv.id, "", attachments=[att])
    assert (out.message.text, out.message.attachments) == ("", [att])
    summary = logic.get_conversation(world.deps, MENTOR, conv.id)
    assert summary.last_message is not None and summary.last_message.attachments == 1
    # And the other member downloads it through an expiring link
    attachment_id = att.key.rsplit("/", 1)[1]
    url, expires = logic.download_url(world.deps, MENTOR, conv.id, attachment_id)
    assert att.key in url and expires == world.clock.now + timedelta(minutes=5)


def test_an_upload_form_is_for_members_one_type_and_one_size(world: FakeWorld) -> None:
    conv = direct(world)
    with pytest.raises(errors.ConversationNotFoundError):
        logic.start_upload(world.deps, "stranger", conv.id, "application/pdf", 1000)
    with pytest.raises(errors.InvalidAttachmentError):
        logic.start_upload(world.deps, MENTEE, conv.id, "application/x-msdownload", 1000)
    with pytest.raises(errors.InvalidAttachmentError):
        logic.start_upload(world.deps, MENTEE, conv.id, "application/pdf", 26 * 1024 * 1024)
    ticket = logic.start_upload(world.deps, MENTEE, conv.id, "application/pdf", 1000, " cv.pdf ")
    assert ticket.attachment.name == "cv.pdf"
    assert ticket.expires_at == world.clock.now + timedelta(minutes=15)
    # Storage refuses another size or type for that form
    with pytest.raises(PermissionError):
        world.attachments.upload(ticket.attachment.key, b"x" * 999, "application/pdf")


def test_a_message_cannot_claim_a_file_that_was_not_uploaded_as_described(
    world: FakeWorld,
) -> None:
    conv = direct(world)
    ticket = logic.start_upload(world.deps, MENTEE, conv.id, "application/pdf", 1000)
    with pytest.raises(errors.InvalidAttachmentError, match="not uploaded"):
        logic.send_message(world.deps, MENTEE, conv.id, "x", attachments=[ticket.attachment])
    world.attachments.upload(ticket.attachment.key, b"x" * 1000, "application/pdf")
    claimed = Attachment(ticket.attachment.key, "application/pdf", 2000)
    with pytest.raises(errors.InvalidAttachmentError, match="size and type"):
        logic.send_message(world.deps, MENTEE, conv.id, "x", attachments=[claimed])
    with pytest.raises(errors.AttachmentNotFoundError):
        logic.download_url(world.deps, MENTOR, conv.id, "01NOSUCHUPLOAD0000000000000")
    with pytest.raises(errors.ConversationNotFoundError):
        logic.download_url(world.deps, "stranger", conv.id, ticket.attachment_id)


@pytest.mark.parametrize(
    "change",
    [
        {"key": "chat/other-conversation/cv.pdf"},
        {"key": "uploads/cv.pdf"},
        {"key": "CONV/../secret"},
        {"content_type": "application/x-msdownload"},
        {"size": 0},
        {"size": 25 * 1024 * 1024 + 1},
        {"name": "  "},
    ],
)
def test_bad_attachments_are_rejected(world: FakeWorld, change: dict[str, object]) -> None:
    conv = direct(world)
    if "key" in change:
        change = {"key": str(change["key"]).replace("CONV", f"chat/{conv.id}")}
    with pytest.raises(errors.InvalidAttachmentError) as e:
        logic.send_message(
            world.deps, MENTEE, conv.id, "cv", attachments=[attachment(conv.id, **change)]
        )
    assert e.value.code == "invalid_attachment"


def test_attachment_count_is_limited(world: FakeWorld) -> None:
    conv = direct(world)
    with pytest.raises(errors.InvalidAttachmentError):
        logic.send_message(world.deps, MENTEE, conv.id, "x", attachments=[attachment(conv.id)] * 6)


# --- receipts and unread ----------------------------------------------------------------


def test_unread_counts_others_messages_after_the_last_read(world: FakeWorld) -> None:
    # Given the mentor wrote three messages and the mentee one
    conv = direct(world)
    first = say(world, MENTOR, conv.id, "1")
    say(world, MENTOR, conv.id, "2")
    say(world, MENTEE, conv.id, "mine")
    say(world, MENTOR, conv.id, "3")
    # Then each reply counted as reading up to it: the mentee has only "3" unread,
    # the mentor (who wrote last) nothing
    assert logic.get_conversation(world.deps, MENTEE, conv.id).unread == 1
    assert logic.get_conversation(world.deps, MENTOR, conv.id).unread == 0
    # When the mentee reads up to the first message, nothing changes (never backwards)
    out = logic.mark_read(world.deps, MENTEE, conv.id, first)
    assert out.events == ()
    assert logic.get_conversation(world.deps, MENTEE, conv.id).unread == 1


def test_mark_read_moves_forward_and_implies_delivered(world: FakeWorld) -> None:
    conv = direct(world)
    a = say(world, MENTOR, conv.id, "a")
    b = say(world, MENTOR, conv.id, "b")
    # When the mentee reads up to a, then b
    logic.mark_read(world.deps, MENTEE, conv.id, a)
    out = logic.mark_read(world.deps, MENTEE, conv.id, b)
    # Then both receipts sit at b and the move is announced
    assert (out.value.last_read_id, out.value.last_delivered_id) == (b, b)
    assert out.events == (ReceiptMoved(conv.id, MENTEE, "read", b, (MENTEE, MENTOR)),)
    assert logic.get_conversation(world.deps, MENTEE, conv.id).unread == 0


def test_mark_delivered_does_not_mark_read(world: FakeWorld) -> None:
    conv = direct(world)
    a = say(world, MENTOR, conv.id, "a")
    out = logic.mark_delivered(world.deps, MENTEE, conv.id, a)
    assert (out.value.last_read_id, out.value.last_delivered_id) == (None, a)
    assert logic.mark_delivered(world.deps, MENTEE, conv.id, a).events == ()
    assert logic.get_conversation(world.deps, MENTEE, conv.id).unread == 1


def test_receipts_need_a_message_of_the_conversation(world: FakeWorld) -> None:
    conv, other = direct(world), group(world)
    foreign = say(world, MENTOR, other.id)
    with pytest.raises(errors.MessageNotFoundError):
        logic.mark_read(world.deps, MENTEE, conv.id, foreign)
    with pytest.raises(errors.MessageNotFoundError):
        logic.mark_read(world.deps, MENTEE, conv.id, "99999999999999999999999999")


def test_unread_is_capped(world: FakeWorld) -> None:
    world.deps = replace(world.deps, config=replace(world.config, unread_cap=3))
    conv = direct(world)
    for i in range(5):
        say(world, MENTOR, conv.id, str(i))
    assert logic.get_conversation(world.deps, MENTEE, conv.id).unread == 3


# --- listing ------------------------------------------------------------------------------


def test_conversations_most_recent_first_with_unread_and_preview(world: FakeWorld) -> None:
    # Given three conversations with activity at different times
    d = direct(world)
    g = group(world)
    d2 = direct(world, MENTEE, CAROL)
    world.clock.advance(minutes=1)
    say(world, MENTOR, d.id, "old news")
    world.clock.advance(minutes=1)
    say(world, OTHER, g.id, "latest")
    # When the mentee lists them two at a time
    first = logic.list_conversations(world.deps, MENTEE, limit=2)
    assert first.next_cursor is not None
    rest = logic.list_conversations(world.deps, MENTEE, 2, first.next_cursor)
    # Then the most recent come first, each with unread count and preview
    assert [s.conversation.id for s in first.items + rest.items] == [g.id, d.id, d2.id]
    assert [s.unread for s in first.items + rest.items] == [1, 1, 0]
    top = first.items[0]
    assert top.last_message is not None and top.last_message.text == "latest"
    assert top.role is MemberRole.MEMBER and rest.next_cursor is None
    assert rest.items[0].last_message is None


def test_history_before_pages_newest_first(world: FakeWorld) -> None:
    conv = direct(world)
    ids = [say(world, MENTOR, conv.id, str(i)) for i in range(5)]
    # When paging back two at a time from the latest
    first = logic.list_messages(world.deps, MENTEE, conv.id, limit=2)
    second = logic.list_messages(world.deps, MENTEE, conv.id, before=first.next_cursor, limit=2)
    third = logic.list_messages(world.deps, MENTEE, conv.id, before=second.next_cursor, limit=2)
    # Then each message appears once, newest first, and the last page says so
    seen = [m.id for p in (first, second, third) for m in p.items]
    assert seen == ids[::-1]
    assert (first.direction, first.has_more, third.has_more, third.next_cursor) == (
        "before",
        True,
        False,
        None,
    )


def test_history_after_catches_up_oldest_first_losing_nothing(world: FakeWorld) -> None:
    # Given a client that last saw message 1 of 6
    conv = direct(world)
    ids = [say(world, MENTOR, conv.id, str(i)) for i in range(6)]
    cursor: str | None = ids[0]
    caught: list[str] = []
    # When it reconnects and pages with after= until nothing more
    while True:
        page = logic.list_messages(world.deps, MENTEE, conv.id, after=cursor, limit=2)
        assert page.direction == "after"
        caught += [m.id for m in page.items]
        cursor = page.next_cursor
        if not page.has_more:
            break
    # Then it has every later message once, in order, and the cursor is the newest
    assert caught == ids[1:] and cursor == ids[-1]
    # And polling again returns nothing new with the same cursor
    idle = logic.list_messages(world.deps, MENTEE, conv.id, after=cursor)
    assert (idle.items, idle.has_more, idle.next_cursor) == ([], False, ids[-1])


@pytest.mark.parametrize(
    "kw", [{"before": "a", "after": "b"}, {"limit": 0}, {"limit": 101}], ids=["both", "zero", "big"]
)
def test_history_rejects_bad_paging(world: FakeWorld, kw: dict[str, object]) -> None:
    conv = direct(world)
    with pytest.raises(errors.InvalidPageError):
        logic.list_messages(world.deps, MENTEE, conv.id, **kw)  # type: ignore[arg-type]


# --- ids ----------------------------------------------------------------------------------


def test_ulid_ids_strictly_increase() -> None:
    ids = logic.UlidIds()
    made = [ids() for _ in range(2000)]
    assert all(len(i) == 26 for i in made)
    assert made == sorted(set(made))


def test_error_codes_are_unique_and_specific() -> None:
    # The codes are API: clients branch on them, so each chat error has its own.
    own = [
        cls
        for cls in vars(errors).values()
        if isinstance(cls, type)
        and issubclass(cls, ProblemError)
        and cls.__module__ == errors.__name__
    ]
    codes = [cls.code for cls in own]
    assert len(codes) == len(set(codes)) == len(own) > 20
    assert not {"bad_request", "validation_failed", "forbidden", "not_found", "conflict"} & set(
        codes
    )


def test_a_resend_is_answered_with_the_stored_message_even_after_a_block(world: FakeWorld) -> None:
    conv = direct(world)
    first = logic.send_message(world.deps, MENTEE, conv.id, "see you", client_message_id="k-1")
    logic.block_user(world.deps, MENTOR, MENTEE)
    # The resend (the client never saw the answer) gets what was stored before the block
    again = logic.send_message(world.deps, MENTEE, conv.id, "see you", client_message_id="k-1")
    assert (again.created, again.message.id) == (False, first.message.id)
    # But a new message is refused
    with pytest.raises(errors.BlockedError):
        logic.send_message(world.deps, MENTEE, conv.id, "hello?", client_message_id="k-2")
