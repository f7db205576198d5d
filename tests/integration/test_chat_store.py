"""The chat logic over the DynamoDB adapter (moto server) and over the fakes: same behaviour.

Each scenario runs twice, once per store, so the fakes the unit tests trust stay
true to the table. Users and ids carry a per-test prefix: the table is shared.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from functions.chat import data, errors, logic
from functions.chat.domain import (
    Attachment,
    Conversation,
    ConversationKind,
    Member,
    MemberRole,
    Message,
    RequestBox,
    RequestStatus,
    pair_key,
)
from local_runtime import LocalPlatform
from tests.stack import boto
from tests.unit.chat.fakes import (
    FakeAttachmentStore,
    FakeClock,
    FakeUowFactory,
    InMemoryChatDatabase,
)

pytestmark = pytest.mark.stack


class PrefixedIds:
    """Strictly increasing ids, unique to one test (the table outlives it)."""

    def __init__(self) -> None:
        self.prefix = uuid.uuid4().hex[:8]
        self.n = 0

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n:018d}"


class RacingDynamoUows:
    """``Deps.uow`` over the table, with a hook to run a competing writer before a commit."""

    def __init__(self, client: Any, table: str) -> None:
        self.client, self.table = client, table
        self._competitors: list[Callable[[], object]] = []

    def __call__(self) -> data.DynamoChatUow:
        factory = self

        class _Uow(data.DynamoChatUow):
            def commit(self) -> None:
                if factory._competitors:
                    factory._competitors.pop(0)()
                super().commit()

        return _Uow(self.client, self.table)

    def before_next_commit(self, competitor: Callable[[], object]) -> None:
        self._competitors.append(competitor)


@dataclass
class World:
    """The chat logic over one store, with users unique to this test."""

    kind: str
    uows: Any
    clock: FakeClock = field(default_factory=FakeClock)
    ids: PrefixedIds = field(default_factory=PrefixedIds)
    attachments: FakeAttachmentStore = field(default_factory=FakeAttachmentStore)
    deps: logic.Deps = field(init=False)

    def __post_init__(self) -> None:
        self.deps = logic.Deps(
            uow=self.uows, attachments=self.attachments, clock=self.clock, ids=self.ids
        )

    def user(self, name: str) -> str:
        return f"u-{name}-{self.ids.prefix}"


@pytest.fixture(scope="module")
def chat_table(local: LocalPlatform) -> str:
    return local.endpoints.resources.tables["chat"]


@pytest.fixture(params=["fake", "dynamodb"])
def world(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    if request.param == "fake":
        yield World("fake", FakeUowFactory(InMemoryChatDatabase()))
        return
    local: LocalPlatform = request.getfixturevalue("local")
    table: str = request.getfixturevalue("chat_table")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", local.endpoints.region)
    yield World("dynamodb", RacingDynamoUows(boto(local, "dynamodb"), table))


@dataclass
class People:
    mentee: str
    mentor: str
    other: str
    carol: str


@pytest.fixture
def who(world: World) -> People:
    return People(*(world.user(n) for n in ("mentee", "mentor", "other", "carol")))


def say(world: World, author: str, conversation_id: str, text: str = "hi", **kw: Any) -> str:
    return logic.send_message(world.deps, author, conversation_id, text, **kw).message.id


@contextmanager
def dynamo_calls(client: Any) -> Iterator[list[str]]:
    """The DynamoDB operations ``client`` makes inside the block, in order."""
    calls: list[str] = []

    def record(model: Any, **_: Any) -> None:
        calls.append(model.name)

    client.meta.events.register("before-call.dynamodb.*", record)
    try:
        yield calls
    finally:
        client.meta.events.unregister("before-call.dynamodb.*", record)


def group(world: World, who: People) -> Conversation:
    return logic.create_group(world.deps, who.mentor, "Cohort", (who.mentee, who.other)).value


# --- binding --------------------------------------------------------------------------


def test_bound_uow_is_a_deps_factory(
    local: LocalPlatform, chat_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the adapter bound once, as a sandbox does at cold start
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    data.bind_table(chat_table, local.endpoints.region, local.endpoints.aws)
    deps = logic.Deps(uow=data.DynamoChatUow)
    user = f"u-{uuid.uuid4().hex[:8]}"
    # When settings are written and read through it
    logic.update_settings(deps, user, open_to_all=True)
    # Then they round-trip
    assert logic.get_settings(deps, user).open_to_all is True


# --- settings, blocks, requests ---------------------------------------------------------


def test_settings_and_blocks(world: World, who: People) -> None:
    logic.update_settings(world.deps, who.mentor, request_ttl_days=3)
    assert logic.get_settings(world.deps, who.mentor).request_ttl_days == 3
    first = logic.block_user(world.deps, who.mentor, who.mentee)
    assert logic.block_user(world.deps, who.mentor, who.mentee) == first
    logic.block_user(world.deps, who.mentor, who.other)
    assert [b.blocked_id for b in logic.list_blocks(world.deps, who.mentor)] == sorted(
        [who.mentee, who.other]
    )
    logic.unblock_user(world.deps, who.mentor, who.mentee)
    assert [b.blocked_id for b in logic.list_blocks(world.deps, who.mentor)] == [who.other]


def test_request_accept_opens_conversation_with_first_message(world: World, who: People) -> None:
    # Given a pending request
    req = logic.send_request(world.deps, who.mentee, who.mentor, "Help with <b>AWS</b>?").value
    with pytest.raises(errors.RequestPendingError):
        logic.send_request(world.deps, who.mentee, who.mentor, "again")
    # When the mentor accepts
    accepted = logic.accept_request(world.deps, who.mentor, req.id)
    # Then a direct conversation holds the request text as the mentee's first message
    conv = accepted.conversation
    assert conv.kind is ConversationKind.DIRECT and conv.direct_key == pair_key(
        who.mentee, who.mentor
    )
    page = logic.list_messages(world.deps, who.mentor, conv.id)
    assert [(m.author_id, m.text) for m in page.items] == [(who.mentee, "Help with AWS?")]
    assert page.items[0].client_message_id == f"request:{req.id}"
    assert logic.get_request(world.deps, who.mentee, req.id).status is RequestStatus.ACCEPTED
    with pytest.raises(errors.AlreadyConnectedError):
        logic.send_request(world.deps, who.mentee, who.mentor, "again")
    # and the members see it, the author having read it
    members = logic.list_members(world.deps, who.mentee, conv.id)
    assert {m.user_id for m in members} == {who.mentee, who.mentor}
    summary = logic.get_conversation(world.deps, who.mentor, conv.id)
    assert summary.unread == 1 and summary.last_message is not None
    assert logic.get_conversation(world.deps, who.mentee, conv.id).unread == 0


def test_declined_or_expired_request_frees_the_pair(world: World, who: People) -> None:
    first = logic.send_request(world.deps, who.mentee, who.mentor, "one").value
    logic.decline_request(world.deps, who.mentor, first.id, "busy")
    second = logic.send_request(world.deps, who.mentee, who.mentor, "two").value
    # an expired pending request is written as expired when the next one is sent
    world.clock.advance(days=8)
    third = logic.send_request(world.deps, who.mentee, who.mentor, "three").value
    assert logic.get_request(world.deps, who.mentee, second.id).status is RequestStatus.EXPIRED
    assert logic.get_request(world.deps, who.mentee, third.id).status is RequestStatus.PENDING


def test_list_requests_by_box_newest_first_in_pages(world: World, who: People) -> None:
    ids = [
        logic.send_request(world.deps, m, who.mentor, "hi").value.id
        for m in (who.mentee, who.other, who.carol)
    ]
    page1 = logic.list_requests(world.deps, who.mentor, RequestBox.INCOMING, limit=2)
    assert [r.id for r in page1.items] == ids[::-1][:2] and page1.next_cursor
    page2 = logic.list_requests(
        world.deps, who.mentor, RequestBox.INCOMING, limit=2, cursor=page1.next_cursor
    )
    assert [r.id for r in page2.items] == [ids[0]] and page2.next_cursor is None
    out = logic.list_requests(world.deps, who.other, RequestBox.OUTGOING, limit=10)
    assert [r.id for r in out.items] == [ids[1]]


# --- direct conversations and races ---------------------------------------------------------


def test_direct_race_yields_one_conversation(world: World, who: People) -> None:
    # Given another writer opening the same pair just before our commit
    world.uows.before_next_commit(
        lambda: logic.open_direct(world.deps, who.mentor, who.mentee, allow_direct=True)
    )
    # When we open it too
    mine = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    # Then both get the one conversation
    again = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    assert mine.id == again.id
    assert len(logic.list_conversations(world.deps, who.mentee).items) == 1


def test_accept_survives_a_concurrent_direct_conversation(world: World, who: People) -> None:
    req = logic.send_request(world.deps, who.mentee, who.mentor, "hello").value
    world.uows.before_next_commit(
        lambda: logic.open_direct(world.deps, who.mentor, who.mentee, allow_direct=True)
    )
    accepted = logic.accept_request(world.deps, who.mentor, req.id)
    assert logic.list_conversations(world.deps, who.mentee).items[0].conversation.id == (
        accepted.conversation.id
    )


def test_resend_returns_the_stored_message(world: World, who: People) -> None:
    conv = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    first = logic.send_message(world.deps, who.mentee, conv.id, "hi", client_message_id="k1")
    again = logic.send_message(world.deps, who.mentee, conv.id, "hi", client_message_id="k1")
    assert first.created and not again.created and again.message.id == first.message.id
    other = logic.open_direct(world.deps, who.mentee, who.other, allow_direct=True)
    with pytest.raises(errors.ClientMessageIdReusedError):
        logic.send_message(world.deps, who.mentee, other.id, "hi", client_message_id="k1")


def test_concurrent_resend_returns_the_winner(world: World, who: People) -> None:
    conv = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    winner: list[str] = []
    world.uows.before_next_commit(
        lambda: winner.append(say(world, who.mentee, conv.id, "hi", client_message_id="k2"))
    )
    result = logic.send_message(world.deps, who.mentee, conv.id, "hi", client_message_id="k2")
    assert not result.created and [result.message.id] == winner
    assert len(logic.list_messages(world.deps, who.mentee, conv.id).items) == 1


# --- groups ---------------------------------------------------------------------------------


def test_group_membership_changes(world: World, who: People) -> None:
    conv = group(world, who)
    say(world, who.mentor, conv.id, "welcome")
    world.clock.advance(minutes=1)
    added = logic.add_members(world.deps, who.mentor, conv.id, [who.carol]).value
    assert added[0].last_read_id is not None
    assert logic.get_conversation(world.deps, who.carol, conv.id).unread == 0
    logic.remove_member(world.deps, who.mentor, conv.id, who.other)
    with pytest.raises(errors.ConversationNotFoundError):
        logic.list_messages(world.deps, who.other, conv.id)
    out = logic.leave(world.deps, who.mentor, conv.id)
    assert out.events[0].new_owner_id == who.mentee  # type: ignore[union-attr]
    roles = {m.user_id: m.role for m in logic.list_members(world.deps, who.mentee, conv.id)}
    assert roles == {who.mentee: MemberRole.OWNER, who.carol: MemberRole.MEMBER}


# --- messages, receipts, lists ----------------------------------------------------------------


def test_conversations_most_recent_first_with_unread(world: World, who: People) -> None:
    # Given three conversations with activity at different times
    a = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    world.clock.advance(minutes=1)
    b = logic.open_direct(world.deps, who.mentee, who.other, allow_direct=True)
    world.clock.advance(minutes=1)
    g = group(world, who)
    world.clock.advance(minutes=1)
    say(world, who.mentor, a.id, "one")
    say(world, who.mentor, a.id, "two")
    # When the mentee lists them in pages of two
    page1 = logic.list_conversations(world.deps, who.mentee, limit=2)
    page2 = logic.list_conversations(world.deps, who.mentee, limit=2, cursor=page1.next_cursor)
    # Then the most recent activity comes first, with unread counts and previews
    assert [s.conversation.id for s in page1.items] == [a.id, g.id]
    assert [s.conversation.id for s in page2.items] == [b.id] and page2.next_cursor is None
    top = page1.items[0]
    assert top.unread == 2 and top.last_message is not None and top.last_message.text == "two"
    # and the mentor's list moved too (every member's place moves with a post)
    assert logic.list_conversations(world.deps, who.mentor).items[0].conversation.id == a.id
    world.clock.advance(minutes=1)
    say(world, who.other, g.id, "group news")
    assert logic.list_conversations(world.deps, who.mentee).items[0].conversation.id == g.id


def test_history_pages_before_and_after(world: World, who: People) -> None:
    conv = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    ids = [say(world, who.mentee, conv.id, f"m{i}") for i in range(5)]
    latest = logic.list_messages(world.deps, who.mentor, conv.id, limit=2)
    assert [m.id for m in latest.items] == ids[:-3:-1] and latest.has_more
    older = logic.list_messages(world.deps, who.mentor, conv.id, before=latest.next_cursor, limit=2)
    assert [m.id for m in older.items] == [ids[2], ids[1]] and older.has_more
    rest = logic.list_messages(world.deps, who.mentor, conv.id, before=older.next_cursor, limit=2)
    assert [m.id for m in rest.items] == [ids[0]] and not rest.has_more
    after = logic.list_messages(world.deps, who.mentor, conv.id, after=ids[1], limit=2)
    assert [m.id for m in after.items] == ids[2:4] and after.has_more
    tail = logic.list_messages(world.deps, who.mentor, conv.id, after=after.next_cursor, limit=2)
    assert [m.id for m in tail.items] == [ids[4]] and not tail.has_more


def test_receipts_forward_only_and_unread_cap(world: World, who: People) -> None:
    conv = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    ids = [say(world, who.mentee, conv.id, f"m{i}") for i in range(4)]
    assert logic.get_conversation(world.deps, who.mentor, conv.id).unread == 4
    moved = logic.mark_read(world.deps, who.mentor, conv.id, ids[2]).value
    assert (moved.last_read_id, moved.last_delivered_id) == (ids[2], ids[2])
    back = logic.mark_read(world.deps, who.mentor, conv.id, ids[0])
    assert back.value.last_read_id == ids[2] and back.events == ()
    assert logic.get_conversation(world.deps, who.mentor, conv.id).unread == 1
    delivered = logic.mark_delivered(world.deps, who.mentor, conv.id, ids[3]).value
    assert (delivered.last_read_id, delivered.last_delivered_id) == (ids[2], ids[3])
    assert logic.list_conversations(world.deps, who.mentor).items[0].unread == 1
    with pytest.raises(errors.MessageNotFoundError):
        logic.mark_read(world.deps, who.mentor, conv.id, "nope")


def replace_cap(world: World, cap: int) -> logic.Deps:
    from dataclasses import replace

    return replace(world.deps, config=replace(world.deps.config, unread_cap=cap))


def test_unread_is_capped(world: World, who: People) -> None:
    conv = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    for i in range(5):
        say(world, who.mentee, conv.id, f"m{i}")
    assert logic.get_conversation(replace_cap(world, 3), who.mentor, conv.id).unread == 3


def test_edit_react_and_tombstones(world: World, who: People) -> None:
    conv = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    first = say(world, who.mentee, conv.id, "first")
    last = say(world, who.mentee, conv.id, "last")
    logic.edit_message(world.deps, who.mentee, conv.id, last, "edited")
    logic.toggle_reaction(world.deps, who.mentor, conv.id, first, "👍")
    reacted = logic.toggle_reaction(world.deps, who.mentee, conv.id, first, "👍").value
    assert reacted.reactions == {"👍": {who.mentor, who.mentee}}
    assert logic.get_conversation(world.deps, who.mentor, conv.id).last_message.text == "edited"  # type: ignore[union-attr]
    # When the last message is deleted
    logic.delete_message(world.deps, who.mentee, conv.id, last)
    # Then it stays in order as a tombstone, is not unread and the preview says so
    items = logic.list_messages(world.deps, who.mentor, conv.id).items
    assert [(m.id, m.deleted, m.text) for m in items] == [(last, True, ""), (first, False, "first")]
    summary = logic.get_conversation(world.deps, who.mentor, conv.id)
    assert summary.unread == 1 and summary.last_message is not None and summary.last_message.deleted
    with pytest.raises(errors.MessageDeletedError):
        logic.toggle_reaction(world.deps, who.mentor, conv.id, last, "👍")


def test_blocks_stop_direct_messages(world: World, who: People) -> None:
    conv = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    logic.block_user(world.deps, who.mentor, who.mentee)
    with pytest.raises(errors.BlockedError):
        say(world, who.mentee, conv.id)
    with pytest.raises(errors.BlockedError):
        say(world, who.mentor, conv.id)
    logic.unblock_user(world.deps, who.mentor, who.mentee)
    say(world, who.mentee, conv.id)


# --- the adapter's own rules (DynamoDB only) --------------------------------------------------


@pytest.fixture
def dynamo(world: World) -> RacingDynamoUows:
    if world.kind != "dynamodb":
        pytest.skip("adapter detail")
    uows: RacingDynamoUows = world.uows
    return uows


def test_uncommitted_work_is_dropped(dynamo: RacingDynamoUows, world: World, who: People) -> None:
    from functions.chat.domain import ChatSettings

    with dynamo() as uow:
        uow.chat.put_settings(ChatSettings(who.mentor, open_to_all=True))
    with dynamo() as uow:
        assert uow.chat.get_settings(who.mentor) is None


def test_unique_direct_pair_at_commit(dynamo: RacingDynamoUows, world: World, who: People) -> None:
    def direct(cid: str) -> tuple[Conversation, list[Member]]:
        now = world.clock.now
        conv = Conversation(
            cid,
            ConversationKind.DIRECT,
            now,
            now,
            who.mentee,
            direct_key=pair_key(who.mentee, who.mentor),
        )
        return conv, [Member(cid, u, MemberRole.MEMBER, now) for u in (who.mentee, who.mentor)]

    first, second = dynamo(), dynamo()
    with first, second:
        first.chat.add_conversation(*direct(world.ids()))
        second.chat.add_conversation(*direct(world.ids()))
        first.commit()
        with pytest.raises(errors.DirectConversationExistsError):
            second.commit()


def test_post_survives_a_later_post_committed_first(
    dynamo: RacingDynamoUows, world: World, who: People
) -> None:
    # Given a group, and another member posting later but committing first
    conv = group(world, who)
    world.clock.advance(minutes=1)

    def later_post() -> None:
        world.clock.advance(minutes=1)
        say(world, who.other, conv.id, "later")

    dynamo.before_next_commit(later_post)
    # When our post commits with an older activity time
    mine = say(world, who.mentee, conv.id, "earlier")
    # Then it lands; the members' order keeps the later activity
    ids = [m.id for m in logic.list_messages(world.deps, who.mentor, conv.id).items]
    assert mine in ids and len(ids) == 2
    assert logic.list_conversations(world.deps, who.mentor).items[0].unread == 2


def test_big_group_commits_above_the_transaction_limit(
    dynamo: RacingDynamoUows, world: World, who: People
) -> None:
    # Given a group of 150 (more items than one transaction holds)
    members = [world.user(f"m{i:03d}") for i in range(149)]
    conv = logic.create_group(world.deps, who.mentor, "Big cohort", members).value
    assert len(logic.list_members(world.deps, who.mentor, conv.id)) == 150
    # When someone posts, every member's list still moves: in DynamoDB the outbox
    # relay moves them from the stream (data.move_activity), not the sender's commit
    world.clock.advance(minutes=1)
    other = logic.open_direct(world.deps, members[-1], who.other, allow_direct=True)
    world.clock.advance(minutes=1)
    say(world, who.mentor, conv.id, "hello all")
    if world.kind == "dynamodb":
        everyone = [who.mentor, *members]
        moved = data.move_activity(conv.id, everyone, world.clock.now, dynamo.client, dynamo.table)
        # the author's own place moved with the post; the platform's own relay (fed by the
        # stream) may have moved some of the others first
        assert moved <= len(members)
        again = data.move_activity(conv.id, everyone, world.clock.now, dynamo.client, dynamo.table)
        assert again == 0  # forward only: a redelivered event changes nothing
        places = {
            item["gsi1sk"]["S"]
            for item in dynamo.client.query(
                TableName=dynamo.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
                ExpressionAttributeValues={":pk": {"S": f"CONV#{conv.id}"}, ":m": {"S": "MEMBER#"}},
                ConsistentRead=True,
            )["Items"]
        }
        assert len(places) == 1  # every member's list holds the group at the post's time
    top = logic.list_conversations(world.deps, members[-1]).items
    assert [s.conversation.id for s in top] == [conv.id, other.id]
    assert top[0].unread == 1
    if world.kind == "dynamodb":
        # and the relay moves a big group's lists at most once a minute (on real time: the
        # platform's own relay claims too, from the stream)
        now = datetime.now(UTC) + timedelta(days=1)
        claim = functools.partial(data.claim_activity_move, conv.id, client=dynamo.client)
        assert claim(now, table_name=dynamo.table)
        assert not claim(now + timedelta(seconds=59), table_name=dynamo.table)
        say(world, who.mentor, conv.id, "a post keeps the throttle")
        assert not claim(now + timedelta(seconds=59), table_name=dynamo.table)
        assert claim(now + timedelta(seconds=61), table_name=dynamo.table)


def test_membership_changes_at_once_both_land(
    dynamo: RacingDynamoUows, world: World, who: People
) -> None:
    # Given a group, and another change of its members landing first
    conv = group(world, who)
    remove_other = functools.partial(
        logic.remove_member, world.deps, who.mentor, conv.id, who.other
    )
    dynamo.before_next_commit(remove_other)
    # When the owner adds Carol (its first commit is refused: the member ids moved on)
    logic.add_members(world.deps, who.mentor, conv.id, [who.carol])
    # Then both changes stand, in the members and in what a post reaches
    members = {m.user_id for m in logic.list_members(world.deps, who.mentor, conv.id)}
    assert members == {who.mentor, who.mentee, who.carol}
    posted = logic.send_message(world.deps, who.mentee, conv.id, "hi", client_message_id="c1")
    assert set(posted.events[0].member_ids) == members  # type: ignore[attr-defined]


def test_a_conversation_stored_before_member_ids_items_still_reaches_everyone(
    dynamo: RacingDynamoUows, world: World, who: People
) -> None:
    # Given a group whose ROSTER item is missing (stored by an earlier version)
    conv = group(world, who)
    dynamo.client.delete_item(
        TableName=dynamo.table, Key={"pk": {"S": f"CONV#{conv.id}"}, "sk": {"S": "ROSTER"}}
    )
    everyone = {who.mentor, who.mentee, who.other}
    # Then a post reaches every member, read from the member items
    posted = logic.send_message(world.deps, who.mentee, conv.id, "hi", client_message_id="c1")
    assert set(posted.events[0].member_ids) == everyone  # type: ignore[attr-defined]
    # and the next membership change writes the member ids again, complete
    logic.add_members(world.deps, who.mentor, conv.id, [who.carol])
    roster = dynamo.client.get_item(
        TableName=dynamo.table, Key={"pk": {"S": f"CONV#{conv.id}"}, "sk": {"S": "ROSTER"}}
    )["Item"]
    assert {v["S"] for v in roster["member_ids"]["L"]} == everyone | {who.carol}


def test_a_send_reads_the_conversation_in_one_round_trip(
    dynamo: RacingDynamoUows, world: World, who: People
) -> None:
    conv = group(world, who)
    with dynamo_calls(dynamo.client) as calls:
        logic.send_message(world.deps, who.mentee, conv.id, "hi", client_message_id="c1")
    assert calls == ["BatchGetItem", "TransactWriteItems"]


def test_a_claim_the_sandbox_knows_is_refused_is_not_sent(
    dynamo: RacingDynamoUows, world: World, who: People
) -> None:
    conv = group(world, who)
    now = datetime.now(UTC) + timedelta(days=2)
    claim = functools.partial(
        data.claim_activity_move, conv.id, client=dynamo.client, table_name=dynamo.table
    )
    with dynamo_calls(dynamo.client) as calls:
        assert claim(now)
        assert not claim(now + timedelta(seconds=30))  # known to be refused: no call
        assert claim(now + timedelta(seconds=61))
    assert calls == ["UpdateItem", "UpdateItem"]


def test_messages_round_trip_every_field(
    dynamo: RacingDynamoUows, world: World, who: People
) -> None:
    conv = logic.open_direct(world.deps, who.mentee, who.mentor, allow_direct=True)
    first = say(world, who.mentee, conv.id, "first")
    world.attachments.objects[f"chat/{conv.id}/cv.pdf"] = (1000, "application/pdf")
    sent = logic.send_message(
        world.deps,
        who.mentor,
        conv.id,
        "",
        client_message_id="c-1",
        reply_to=first,
        attachments=[Attachment(f"chat/{conv.id}/cv.pdf", "application/pdf", 1000, name="CV")],
    ).message
    with dynamo() as uow:
        stored = uow.chat.get_message(conv.id, sent.id)
    assert isinstance(stored, Message) and stored == sent
