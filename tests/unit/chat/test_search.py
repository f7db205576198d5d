"""Message search logic over fakes: query rules, permissions, cursor, highlights, indexing."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from functions.chat import search
from functions.chat.errors import ConversationNotFoundError
from functions.chat.search import (
    MARK_START,
    MARK_STOP,
    InvalidSearchQueryError,
    MessageChange,
    MessageImage,
    SearchDeps,
    SearchParams,
)
from lwm_core.errors import InvalidCursorError

from .search_fakes import FakeMemberships, FakeMessageIndex, FakeSearchUow

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class World:
    """The search logic over fakes, with a helper to index messages as the stream would."""

    def __init__(self) -> None:
        self.index = FakeMessageIndex()
        self.members = FakeMemberships()
        self.deps = SearchDeps(uow=lambda: FakeSearchUow(self.index), memberships=self.members)
        self.seq = 0

    def post(self, conversation_id: str, message_id: str, text: str, minute: int = 0) -> None:
        self.seq += 1
        image = MessageImage(
            conversation_id, message_id, "ada", text, T0 + timedelta(minutes=minute), None, None
        )
        change = MessageChange(conversation_id, message_id, self.seq, image)
        search.apply_change(FakeSearchUow(self.index), change)

    def find(self, user_id: str, q: str, **kw: Any) -> list[str]:
        page = search.search_messages(self.deps, user_id, SearchParams(q, **kw))
        return [h.message_id for h in page.items]


@pytest.fixture
def world() -> World:
    return World()


# --- query rules -----------------------------------------------------------------------


@pytest.mark.parametrize("q", ["", "   ", "\t\n"])
def test_an_empty_query_is_invalid(q: str) -> None:
    with pytest.raises(InvalidSearchQueryError) as e:
        search.validate_query(q)
    assert e.value.code == "invalid_query"
    assert e.value.errors[0].loc == ("query", "q")


def test_a_query_longer_than_the_limit_is_invalid() -> None:
    search.validate_query("a" * search.MAX_QUERY_CHARS)
    with pytest.raises(InvalidSearchQueryError):
        search.validate_query("a" * (search.MAX_QUERY_CHARS + 1))


@pytest.mark.parametrize("q", ["caf\x00e", "a\x01b", "x\ud800"])
def test_control_characters_and_surrogates_are_refused(q: str) -> None:
    with pytest.raises(InvalidSearchQueryError):
        search.validate_query(q)


def test_the_query_is_trimmed_and_composed() -> None:
    assert search.validate_query("  cafe\u0301  ") == "café"


def test_a_query_of_punctuation_or_exclusions_only_is_invalid(world: World) -> None:
    world.members.join("ada", "c1")
    with pytest.raises(InvalidSearchQueryError, match="no words"):
        world.find("ada", '"" OR')
    with pytest.raises(InvalidSearchQueryError, match="not only what to exclude"):
        world.find("ada", "-tea")


# --- folding and highlights ------------------------------------------------------------


@given(st.text(max_size=200))
def test_fold_keeps_length_and_removes_markers_and_markup(text: str) -> None:
    folded = search.fold(text)
    assert len(folded) == len(text)
    assert MARK_START not in folded and MARK_STOP not in folded
    assert not set("<>&") & set(folded)


def test_fold_lowercases_every_script() -> None:
    assert search.fold("ÉMILE Привет ΣΟΦΊΑ İx") == "émile привет σοφία İx"


def test_plain_text_decodes_the_stored_entities() -> None:
    assert search.plain_text("R&amp;D &lt;b&gt; caf&eacute;") == "R&D <b> café"


def test_a_highlight_marks_matches_in_the_original_case_and_escapes_the_rest() -> None:
    plain = "Bring <script>alert(1)</script> & the CAFÉ menu"
    folded = search.fold(plain)
    start = folded.index("café")
    marked = f"{folded[start - 4 : start]}{MARK_START}café{MARK_STOP} menu"
    out = search.highlight(plain, marked)
    assert out == "…the <mark>CAFÉ</mark> menu"


def test_a_highlight_that_cannot_be_placed_falls_back_to_the_escaped_start() -> None:
    out = search.highlight("<i>x</i> " + "word " * 60, "no such excerpt")
    assert out.startswith("&lt;i&gt;x&lt;/i&gt; word")
    assert out.endswith("…")
    assert "<mark>" not in out


@given(
    st.text(max_size=120),
    st.lists(st.integers(min_value=0, max_value=120), max_size=6),
    st.integers(min_value=0, max_value=120),
    st.integers(min_value=0, max_value=120),
)
def test_a_highlight_is_html_safe_and_shows_only_the_message(
    plain: str, cuts: list[int], lo: int, hi: int
) -> None:
    # Given any excerpt of the folded text with markers anywhere in it
    folded = search.fold(plain)
    lo, hi = sorted((min(lo, len(folded)), min(hi, len(folded))))
    excerpt = folded[lo:hi]
    marked, last = [], 0
    for i, cut in enumerate(sorted(min(c, len(excerpt)) for c in cuts)):
        marked += [excerpt[last:cut], MARK_START if i % 2 == 0 else MARK_STOP]
        last = cut
    marked.append(excerpt[last:])
    # When it is turned into a highlight
    out = search.highlight(plain, "".join(marked))
    # Then its only markup is <mark>, and without it the text is part of the message
    bare = out.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in bare and ">" not in bare
    assert re.fullmatch(r"(<mark>[^<]*</mark>|[^<])*", out, flags=re.S)
    shown = html.unescape(bare).strip("…")
    assert shown in plain or plain[:200].startswith(shown)


# --- search: permissions, order, pages --------------------------------------------------


def test_a_user_finds_messages_of_their_conversations_only(world: World) -> None:
    world.members.join("ada", "c1")
    world.members.join("ben", "c2")
    world.post("c1", "m1", "budget review tomorrow")
    world.post("c2", "m2", "budget for the trip")
    assert world.find("ada", "budget") == ["m1"]
    assert world.find("ben", "budget") == ["m2"]
    assert world.find("eve", "budget") == []


def test_a_user_in_no_conversation_gets_an_empty_page_without_a_search(world: World) -> None:
    page = search.search_messages(world.deps, "eve", SearchParams("budget"))
    assert page.items == [] and page.next_cursor is None
    assert world.index.searches == 0


def test_a_membership_the_gsi_still_lists_is_confirmed_and_dropped(world: World) -> None:
    # Given Ada left c2, but the user index still lists it (it lags the table)
    world.members.join("ada", "c1")
    world.members.join("ada", "c2")
    world.post("c1", "m1", "budget one", minute=1)
    world.post("c2", "m2", "budget two", minute=2)
    world.members.leave("ada", "c2", gsi_lags=True)
    # When she searches, Then c2's message is gone and the page is refilled from c1
    assert world.find("ada", "budget", limit=1) == ["m1"]
    assert world.index.searches == 2


def test_a_conversation_filter_needs_membership(world: World) -> None:
    world.members.join("ada", "c1")
    world.members.join("ada", "c2")
    world.post("c1", "m1", "budget one")
    world.post("c2", "m2", "budget two")
    assert world.find("ada", "budget", conversation_id="c2") == ["m2"]
    with pytest.raises(ConversationNotFoundError) as e:
        world.find("ben", "budget", conversation_id="c1")
    assert e.value.code == "conversation_not_found"


def test_results_come_best_match_first_then_newest(world: World) -> None:
    world.members.join("ada", "c1")
    world.post("c1", "old", "plan plan", minute=1)
    world.post("c1", "weak", "plan for a long long week", minute=2)
    world.post("c1", "new", "plan plan", minute=3)
    assert world.find("ada", "plan") == ["new", "old", "weak"]


def test_pages_follow_the_cursor_without_gaps_or_repeats(world: World) -> None:
    world.members.join("ada", "c1")
    for i in range(7):
        world.post("c1", f"m{i}", "standup notes", minute=i)
    seen: list[str] = []
    cursor = None
    while True:
        page = search.search_messages(
            world.deps, "ada", SearchParams("standup", limit=3, cursor=cursor)
        )
        seen += [h.message_id for h in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"m{i}" for i in reversed(range(7))]


def test_a_cursor_belongs_to_its_query(world: World) -> None:
    world.members.join("ada", "c1")
    for i in range(3):
        world.post("c1", f"m{i}", "standup notes", minute=i)
    page = search.search_messages(world.deps, "ada", SearchParams("standup", limit=1))
    assert page.next_cursor
    with pytest.raises(InvalidCursorError):
        world.find("ada", "notes", cursor=page.next_cursor)
    with pytest.raises(InvalidCursorError):
        world.find("ada", "standup", conversation_id="c1", cursor=page.next_cursor)
    with pytest.raises(InvalidCursorError):
        world.find("ada", "standup", cursor="not-a-cursor")


def test_a_position_survives_the_cursor_exactly() -> None:
    p = search.Position(0.1 + 0.2, T0, "c1", "m1")
    assert search.decode_position(search.encode_position("s", p), "s") == p


def test_hits_carry_safe_text_and_a_highlight(world: World) -> None:
    world.members.join("ada", "c1")
    world.post("c1", "m1", "see &lt;b&gt;the&lt;/b&gt; Budget")
    page = search.search_messages(world.deps, "ada", SearchParams("budget"))
    (hit,) = page.items
    assert hit.text == "see &lt;b&gt;the&lt;/b&gt; Budget"
    assert hit.highlight.endswith("<mark>Budget</mark>")
    assert (hit.conversation_id, hit.author_id, hit.created_at) == ("c1", "ada", T0)


# --- indexing --------------------------------------------------------------------------


def _image(text: str, *, edited: int | None = None, deleted: bool = False) -> MessageImage:
    return MessageImage(
        "c1",
        "m1",
        "ada",
        text,
        T0,
        T0 + timedelta(minutes=edited) if edited is not None else None,
        T0 + timedelta(hours=1) if deleted else None,
    )


def test_an_image_is_indexed_as_plain_text_and_committed() -> None:
    index = FakeMessageIndex()
    uow = FakeSearchUow(index)
    assert search.apply_change(uow, MessageChange("c1", "m1", 1, _image("caf&eacute; &amp; co")))
    assert uow.committed
    live = index.live("c1", "m1")
    assert live is not None and live.body == "café & co"


def test_a_tombstone_image_or_a_removal_leaves_a_tombstone() -> None:
    for change in (
        MessageChange("c1", "m1", 2, _image("", deleted=True)),
        MessageChange("c1", "m1", 2, None),
    ):
        index = FakeMessageIndex()
        search.apply_change(FakeSearchUow(index), MessageChange("c1", "m1", 1, _image("hi")))
        assert search.apply_change(FakeSearchUow(index), change)
        assert index.live("c1", "m1") is None
        # and an older image replayed later does not bring it back
        late = MessageChange("c1", "m1", 1, _image("hi"))
        assert not search.apply_change(FakeSearchUow(index), late)
        assert index.live("c1", "m1") is None
