"""In-memory fakes of the search ports (``functions.chat.search``).

``FakeMessageIndex`` keeps the store's rules that the logic relies on: rows are
replaced only by a higher sequence number and never after a tombstone; results
come best first (here: share of words that match), then newest, and page after
a ``Position``. Its matching is deliberately simple (every unquoted, unexcluded
word must appear); PostgreSQL's own semantics are pinned by the integration
tests (``tests/integration/test_chat_search.py``).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

from functions.chat.search import (
    MARK_START,
    MARK_STOP,
    IndexedMessage,
    Position,
    QueryShape,
    ScoredMessage,
)


@dataclass
class _Row:
    message: IndexedMessage | None  # None: tombstone
    folded: str
    seq: int


def _words(folded_query: str) -> tuple[list[str], list[str]]:
    include: list[str] = []
    exclude: list[str] = []
    for raw in folded_query.replace('"', " ").split():
        if raw == "or":
            continue
        (exclude if raw.startswith("-") else include).append(raw.lstrip("-"))
    return [w for w in include if w], [w for w in exclude if w]


@dataclass
class FakeMessageIndex:
    """The index in a dict, keyed like the table: (conversation id, message id)."""

    rows: dict[tuple[str, str], _Row] = field(default_factory=dict)
    searches: int = 0

    def inspect(self, folded_query: str) -> QueryShape:
        include, exclude = _words(folded_query)
        return QueryShape(len(include) + len(exclude), bool(include))

    def search(
        self,
        folded_query: str,
        conversation_ids: Collection[str],
        limit: int,
        after: Position | None,
    ) -> Sequence[ScoredMessage]:
        self.searches += 1
        include, exclude = _words(folded_query)
        scored = []
        for (cid, _), row in self.rows.items():
            if row.message is None or cid not in conversation_ids:
                continue
            words = row.folded.split()
            if all(w in words for w in include) and not any(w in words for w in exclude):
                rank = sum(words.count(w) for w in include) / max(len(words), 1)
                scored.append(ScoredMessage(row.message, rank))

        def key(s: ScoredMessage) -> tuple[float, str, str, str]:
            p = s.position
            return (p.rank, p.created_at.isoformat(), p.conversation_id, p.message_id)

        scored.sort(key=key, reverse=True)
        if after is not None:
            last = (
                after.rank,
                after.created_at.isoformat(),
                after.conversation_id,
                after.message_id,
            )
            scored = [s for s in scored if key(s) < last]
        return scored[:limit]

    def headlines(self, folded_query: str, folded_texts: Sequence[str]) -> Sequence[str]:
        include, _ = _words(folded_query)
        out = []
        for text in folded_texts:
            marked = [f"{MARK_START}{w}{MARK_STOP}" if w in include else w for w in text.split(" ")]
            out.append(" ".join(marked))
        return out

    def upsert(self, message: IndexedMessage, folded: str, sequence: int) -> bool:
        key = (message.conversation_id, message.message_id)
        row = self.rows.get(key)
        if row is not None and (row.message is None or row.seq >= sequence):
            return False
        self.rows[key] = _Row(message, folded, sequence)
        return True

    def tombstone(self, conversation_id: str, message_id: str, sequence: int) -> bool:
        key = (conversation_id, message_id)
        row = self.rows.get(key)
        if row is not None and row.message is None:
            return False
        self.rows[key] = _Row(None, "", max(sequence, row.seq if row else 0))
        return True

    def live(self, conversation_id: str, message_id: str) -> IndexedMessage | None:
        row = self.rows.get((conversation_id, message_id))
        return row.message if row else None


class FakeSearchUow:
    """A unit of work over the fake index; records whether it was committed."""

    def __init__(self, index: FakeMessageIndex) -> None:
        self.index = index
        self.committed = False

    def __enter__(self) -> Self:
        self.committed = False
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def commit(self) -> None:
        self.committed = True


@dataclass
class FakeMemberships:
    """Memberships as two views: what the (lagging) GSI lists and what the table holds."""

    table: dict[str, set[str]] = field(default_factory=dict)  # user -> conversations
    gsi: dict[str, set[str]] = field(default_factory=dict)
    confirmed_calls: int = 0

    def join(self, user_id: str, conversation_id: str) -> None:
        self.table.setdefault(user_id, set()).add(conversation_id)
        self.gsi.setdefault(user_id, set()).add(conversation_id)

    def leave(self, user_id: str, conversation_id: str, *, gsi_lags: bool = False) -> None:
        self.table.get(user_id, set()).discard(conversation_id)
        if not gsi_lags:
            self.gsi.get(user_id, set()).discard(conversation_id)

    def conversations_of(self, user_id: str) -> frozenset[str]:
        return frozenset(self.gsi.get(user_id, set()))

    def confirm(self, user_id: str, conversation_ids: Collection[str]) -> frozenset[str]:
        self.confirmed_calls += 1
        return frozenset(set(conversation_ids) & self.table.get(user_id, set()))
