"""The chat fakes keep the DynamoDB adapter's semantics (so logic tests can trust them)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from functions.chat import errors
from functions.chat.domain import (
    ChatSettings,
    Conversation,
    ConversationKind,
    Member,
    MemberRole,
    MentorshipRequest,
    Message,
    RequestBox,
    RequestStatus,
    pair_key,
)
from lwm_core.errors import InvalidCursorError

from .fakes import FakeUowFactory, InMemoryChatDatabase

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def request(rid: str, mentee: str = "a", mentor: str = "m") -> MentorshipRequest:
    return MentorshipRequest(rid, mentee, mentor, "hi", T0, T0 + timedelta(days=7))


def direct_conversation(cid: str, a: str = "a", b: str = "b") -> tuple[Conversation, list[Member]]:
    conv = Conversation(cid, ConversationKind.DIRECT, T0, T0, a, direct_key=pair_key(a, b))
    return conv, [Member(cid, u, MemberRole.MEMBER, T0) for u in (a, b)]


@pytest.fixture
def uows() -> FakeUowFactory:
    return FakeUowFactory(InMemoryChatDatabase())


def test_uncommitted_work_is_discarded(uows: FakeUowFactory) -> None:
    # Given a write without commit
    with uows() as uow:
        uow.chat.put_settings(ChatSettings("m", open_to_all=True))
    # Then nothing landed
    with uows() as uow:
        assert uow.chat.get_settings("m") is None


def test_objects_are_copies(uows: FakeUowFactory) -> None:
    # Given a stored conversation changed in memory but not saved
    conv, members = direct_conversation("c1")
    with uows() as uow:
        uow.chat.add_conversation(conv, members)
        uow.commit()
    with uows() as uow:
        loaded = uow.chat.get_conversation("c1")
        assert loaded is not None
        loaded.title = "changed"
        # Then a fresh read does not see the change
        again = uow.chat.get_conversation("c1")
        assert again is not None and again.title is None


def test_unique_direct_pair_at_write_and_at_commit(uows: FakeUowFactory) -> None:
    # At write time, within one unit of work
    with uows() as uow:
        uow.chat.add_conversation(*direct_conversation("c1"))
        with pytest.raises(errors.DirectConversationExistsError):
            uow.chat.add_conversation(*direct_conversation("c2", "b", "a"))
    # At commit time, when another unit of work committed the pair meanwhile
    first, second = uows(), uows()
    with first, second:
        first.chat.add_conversation(*direct_conversation("c1"))
        second.chat.add_conversation(*direct_conversation("c2", "b", "a"))
        first.commit()
        with pytest.raises(errors.DirectConversationExistsError):
            second.commit()
    assert list(uows.db.conversations) == ["c1"]


def test_pending_request_slot_is_freed_when_answered(uows: FakeUowFactory) -> None:
    with uows() as uow:
        uow.chat.add_request(request("r1"))
        with pytest.raises(errors.RequestPendingError):
            uow.chat.add_request(request("r2"))
        answered = uow.chat.get_request("r1")
        assert answered is not None
        answered.status = RequestStatus.DECLINED
        uow.chat.save_request(answered)
        uow.chat.add_request(request("r2"))
        uow.commit()
    with uows() as uow:
        pending = uow.chat.get_pending_request("a", "m")
        assert pending is not None and pending.id == "r2"


def test_client_message_id_is_unique_per_author_across_units(uows: FakeUowFactory) -> None:
    conv, members = direct_conversation("c1")
    with uows() as uow:
        uow.chat.add_conversation(conv, members)
        uow.commit()

    def msg(mid: str, author: str = "a") -> Message:
        return Message(mid, "c1", author, "hi", T0, client_message_id="k")

    first, second = uows(), uows()
    with first, second:
        first.chat.add_message(msg("m1"))
        second.chat.add_message(msg("m2"))
        first.commit()
        with pytest.raises(errors.DuplicateClientMessageError):
            second.commit()
    with uows() as uow:
        uow.chat.add_message(msg("m3", author="b"))  # another author may reuse it
        uow.commit()
        found = uow.chat.find_by_client_id("a", "k")
        assert found is not None and found.id == "m1"


def test_commits_merge_item_by_item(uows: FakeUowFactory) -> None:
    # Given two units of work changing different items
    first, second = uows(), uows()
    with first, second:
        first.chat.put_settings(ChatSettings("m1"))
        second.chat.put_settings(ChatSettings("m2"))
        first.commit()
        second.commit()
    # Then both changes landed (not last-snapshot-wins)
    assert set(uows.db.settings) == {"m1", "m2"}


def test_message_windows_and_cursor_scopes(uows: FakeUowFactory) -> None:
    conv, members = direct_conversation("c1")
    with uows() as uow:
        uow.chat.add_conversation(conv, members)
        for i in range(1, 6):
            uow.chat.add_message(Message(f"m{i}", "c1", "a", str(i), T0))
        uow.commit()
        repo = uow.chat
        assert [m.id for m in repo.messages_before("c1", "m4", 2)] == ["m3", "m2"]
        assert [m.id for m in repo.messages_before("c1", None, 2)] == ["m5", "m4"]
        assert [m.id for m in repo.messages_after("c1", "m2", 2)] == ["m3", "m4"]
        assert repo.count_unread("c1", "m1", "b", cap=3) == 3
        assert repo.count_unread("c1", None, "a", cap=100) == 0
        with uows() as other:
            other.chat.add_request(request("r1"))
            other.chat.add_request(request("r2", mentee="b"))
            other.commit()
            page = other.chat.list_requests("m", RequestBox.INCOMING, 1, None)
            assert page.next_cursor is not None
            with pytest.raises(InvalidCursorError):
                other.chat.list_conversations("m", 1, page.next_cursor)
