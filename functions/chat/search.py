"""Full-text search over chat messages: query rules, permissions, ranking, highlights.

Pure and typed: the functions receive their collaborators (``SearchDeps``: the
index's unit of work and the membership reader) and values; they never read the
environment or import a driver. The index is PostgreSQL full-text search
(``search_store``), fed from the chat table's stream (``search_index``).

Choices where the product issue is silent:

* **Permissions at query time.** The index holds every message; what a caller
  may find is decided per request from the chat table: the conversations they
  are a member of *now* (their member items, gsi1 ``USER#<id>``). The index is
  eventually consistent with the table and so is the GSI, so the conversations
  on a result page are confirmed with consistent reads of the member items; a
  membership that ended meanwhile is dropped and the page queried again. With
  ``conversation_id`` the membership is read consistently first; a conversation
  the caller is not in is ``conversation_not_found`` (404), as in the chat API.
* **Language-neutral matching.** One configuration for every language: the
  ``simple`` dictionary (no stemming, no stop words) behind ``unaccent``, so
  ``café`` finds ``Cafe`` and ``Straße`` finds ``strasse``. Text is lowercased
  here (``fold``) before PostgreSQL sees it, so matching does not depend on the
  database's locale (the local cluster is ``C``, which lowercases ASCII only).
* **Query syntax** is ``websearch_to_tsquery``: words (all must match),
  ``"quoted phrases"``, ``-excluded`` words, ``OR``. A query with no words, or
  only exclusions, is ``invalid_query`` (422): it would match everything.
* **Order:** relevance (``ts_rank_cd``, normalised by length) first, then
  newest first; the cursor is the last hit's place in that order, bound to the
  query (a cursor from another query is ``invalid_cursor``).
* **Safe output.** The index keeps the plain text (entities decoded); ``text``
  and ``highlight`` are re-escaped here, and the highlight's only markup is
  ``<mark>``: PostgreSQL marks matches with control characters that the folded
  text cannot contain, and the marked excerpt is mapped back onto the original.
* **Deletes are final.** A deleted message (tombstone image) or a removed item
  leaves a tombstone row in the index, so a late or replayed older image cannot
  bring it back; newer images replace older ones by stream sequence number.
"""

from __future__ import annotations

import hashlib
import html
import unicodedata
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from functions.chat.errors import ConversationNotFoundError
from lwm_core.errors import FieldError, InvalidCursorError, RequestValidationError
from lwm_core.pagination import Page, decode_cursor, encode_cursor

MAX_QUERY_CHARS = 200
DEFAULT_LIMIT = 20
MAX_LIMIT = 50
# A page whose conversations turn out to be revoked is queried again without them; a
# revocation is rare (the GSI lags the table by well under a second), so a few suffice.
MAX_REVOCATION_RETRIES = 3

# Marks ts_headline puts around matches. ``fold`` turns every control character into a
# space, so no indexed or highlighted text can contain them.
MARK_START = "\x01"
MARK_STOP = "\x02"
ELLIPSIS = "…"
_SEPARATORS = frozenset("<>&")


class InvalidSearchQueryError(RequestValidationError):
    """The search query is empty, too long, or has nothing to look for."""

    code = "invalid_query"
    title = "Invalid search query"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, errors=[FieldError(("query", "q"), detail, self.code)])


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchParams:
    """One search as asked: the raw query text, an optional conversation, the page."""

    q: str
    conversation_id: str | None = None
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


@dataclass(frozen=True)
class Position:
    """A hit's place in the result order (relevance, then newest): the cursor's content."""

    rank: float
    created_at: datetime
    conversation_id: str
    message_id: str


@dataclass(frozen=True)
class IndexedMessage:
    """A message as the index holds it: plain text, entities decoded."""

    conversation_id: str
    message_id: str
    author_id: str
    created_at: datetime
    edited_at: datetime | None
    body: str


@dataclass(frozen=True)
class ScoredMessage:
    """A message that matched, with its relevance."""

    message: IndexedMessage
    rank: float

    @property
    def position(self) -> Position:
        m = self.message
        return Position(self.rank, m.created_at, m.conversation_id, m.message_id)


@dataclass(frozen=True)
class SearchHit:
    """One result: the message (HTML-safe text) and an excerpt with ``<mark>``ed matches."""

    conversation_id: str
    message_id: str
    author_id: str
    created_at: datetime
    edited_at: datetime | None
    text: str
    highlight: str


@dataclass(frozen=True)
class QueryShape:
    """What PostgreSQL made of a query: its size, and whether an index can serve it.

    ``nodes`` counts lexemes and operators (0: the query has no words); a query of
    exclusions only is not ``indexable`` (it would match nearly everything).
    """

    nodes: int
    indexable: bool


@dataclass(frozen=True)
class MessageImage:
    """The state of a message item after a change (from a stream record's new image)."""

    conversation_id: str
    message_id: str
    author_id: str
    text: str  # as stored by the chat service: HTML-safe, entity-escaped
    created_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None


@dataclass(frozen=True)
class MessageChange:
    """One change of a message item: its new state, or ``None`` when the item was removed.

    ``sequence`` is the stream record's sequence number: it orders the changes of
    one item, so the index applies a change only if it is newer than what it holds.
    """

    conversation_id: str
    message_id: str
    sequence: int
    image: MessageImage | None


# --- ports -------------------------------------------------------------------------------


class MessageIndex(Protocol):
    """The searchable copy of the messages (PostgreSQL in ``search_store``)."""

    def inspect(self, folded_query: str) -> QueryShape: ...

    def search(
        self,
        folded_query: str,
        conversation_ids: Collection[str],
        limit: int,
        after: Position | None,
    ) -> Sequence[ScoredMessage]: ...

    def headlines(self, folded_query: str, folded_texts: Sequence[str]) -> Sequence[str]: ...

    def upsert(self, message: IndexedMessage, folded: str, sequence: int) -> bool: ...

    def tombstone(self, conversation_id: str, message_id: str, sequence: int) -> bool: ...


class SearchUow(Protocol):
    """A transaction over the index (entered with ``with``; leaving uncommitted rolls back)."""

    @property
    def index(self) -> MessageIndex: ...

    def commit(self) -> None: ...


class Memberships(Protocol):
    """Who is in which conversation, read from the chat table at query time."""

    def conversations_of(self, user_id: str) -> frozenset[str]:
        """Every conversation the user is a member of (all pages of the user's index)."""
        ...

    def confirm(self, user_id: str, conversation_ids: Collection[str]) -> frozenset[str]:
        """The ones of ``conversation_ids`` the user is a member of (consistent reads)."""
        ...


@dataclass(frozen=True)
class SearchDeps:
    """The search logic's collaborators."""

    uow: Callable[[], AbstractContextManager[SearchUow]]
    memberships: Memberships


# --- text rules ---------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lowercase ``text`` character by character, keeping its length and alignment.

    Control characters become spaces (so the highlight markers cannot occur), and so
    do ``<``, ``>`` and ``&``: PostgreSQL's parser would read ``<b>`` or ``&amp;`` in
    plain text as markup, leave those words out of the index and drop them from
    excerpts. A character whose lowercase is longer than one character (``İ``)
    stays as it is: position ``i`` of the result always stands for position ``i``
    of ``text``.
    """
    out = []
    for ch in text:
        if ch in _SEPARATORS or unicodedata.category(ch) == "Cc":
            out.append(" ")
            continue
        low = ch.lower()
        out.append(low if len(low) == 1 else ch)
    return "".join(out)


def plain_text(stored: str) -> str:
    """The plain text of a stored message (entities decoded, NFC) that the index keeps."""
    return unicodedata.normalize("NFC", html.unescape(stored))


def safe_html(plain: str) -> str:
    """``plain`` as an HTML-safe fragment, the chat service's text contract."""
    return html.escape(plain, quote=False)


def validate_query(q: str) -> str:
    """The query text to search for, trimmed.

    Raises:
        InvalidSearchQueryError: empty, longer than ``MAX_QUERY_CHARS``, or with
            control characters or unpaired surrogates.
    """
    text = q.strip()
    if not text:
        raise InvalidSearchQueryError("say what to search for")
    if len(q) > MAX_QUERY_CHARS:
        raise InvalidSearchQueryError(f"the query is limited to {MAX_QUERY_CHARS} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in text):
        raise InvalidSearchQueryError("the query must not contain control characters")
    return unicodedata.normalize("NFC", text)


def highlight(plain: str, marked: str) -> str:
    """An HTML-safe excerpt of ``plain`` with its matches in ``<mark>``.

    ``marked`` is ts_headline's excerpt of ``fold(plain)`` with ``MARK_START`` and
    ``MARK_STOP`` around matches. Being folded, it aligns with ``plain``
    character by character, so its spans are cut from ``plain`` (original case)
    and every piece is escaped; only the ``<mark>`` tags are markup. When the
    excerpt cannot be placed (it always can), the start of the text is returned.
    """
    stripped = marked.replace(MARK_START, "").replace(MARK_STOP, "")
    folded = fold(plain)
    start = folded.find(stripped) if stripped else -1
    if start < 0:
        return safe_html(plain[:200]) + (ELLIPSIS if len(plain) > 200 else "")
    parts: list[str] = [ELLIPSIS] if start > 0 else []
    at = start
    open_mark = False
    for piece in _split_marks(marked):
        if piece == MARK_START:
            parts.append("<mark>")
            open_mark = True
        elif piece == MARK_STOP:
            if open_mark:
                parts.append("</mark>")
                open_mark = False
        else:
            parts.append(safe_html(plain[at : at + len(piece)]))
            at += len(piece)
    if open_mark:
        parts.append("</mark>")
    if at < len(plain):
        parts.append(ELLIPSIS)
    return "".join(parts)


def _split_marks(marked: str) -> list[str]:
    pieces: list[str] = []
    current: list[str] = []
    for ch in marked:
        if ch in (MARK_START, MARK_STOP):
            if current:
                pieces.append("".join(current))
                current = []
            pieces.append(ch)
        else:
            current.append(ch)
    if current:
        pieces.append("".join(current))
    return pieces


# --- cursor -------------------------------------------------------------------------------


def _scope(folded_query: str, conversation_id: str | None) -> str:
    digest = hashlib.sha256(f"{folded_query}\x00{conversation_id or ''}".encode()).hexdigest()
    return f"chat-search:{digest[:16]}"


def encode_position(scope: str, p: Position) -> str:
    """The cursor after ``p`` (the rank as a float's exact hex form)."""
    return encode_cursor(
        scope, [p.rank.hex(), p.created_at.isoformat(), p.conversation_id, p.message_id]
    )


def decode_position(cursor: str, scope: str) -> Position:
    """The position a cursor of this search points after.

    Raises:
        InvalidCursorError: not a cursor of this query (or not ours at all).
    """
    rank, created_at, conversation_id, message_id = decode_cursor(cursor, scope, 4)
    try:
        when = datetime.fromisoformat(str(created_at))
        return Position(float.fromhex(str(rank)), when, str(conversation_id), str(message_id))
    except (TypeError, ValueError) as e:
        raise InvalidCursorError("cursor is not one this API issued") from e


# --- search --------------------------------------------------------------------------------


def search_messages(deps: SearchDeps, user_id: str, params: SearchParams) -> Page[SearchHit]:
    """The messages of the user's conversations matching ``params.q``: best first, then newest.

    Raises:
        InvalidSearchQueryError: see :func:`validate_query`, or the query has no
            word to look for (only punctuation, or only exclusions).
        InvalidCursorError: the cursor belongs to another query.
        ConversationNotFoundError: ``conversation_id`` is not one of the user's.
    """
    text = validate_query(params.q)
    folded = fold(text)
    scope = _scope(folded, params.conversation_id)
    after = decode_position(params.cursor, scope) if params.cursor else None
    if params.conversation_id is not None:
        allowed = deps.memberships.confirm(user_id, [params.conversation_id])
        if not allowed:
            raise ConversationNotFoundError()
    else:
        allowed = deps.memberships.conversations_of(user_id)
    with deps.uow() as uow:
        shape = uow.index.inspect(folded)
        if shape.nodes == 0:
            raise InvalidSearchQueryError("the query has no words to search for")
        if not shape.indexable:
            raise InvalidSearchQueryError("say what to find, not only what to exclude")
        if not allowed:
            return Page([], None)
        rows = _permitted_rows(deps, uow.index, user_id, folded, set(allowed), params, after)
        page, more = rows[: params.limit], len(rows) > params.limit
        marked = uow.index.headlines(folded, [fold(r.message.body) for r in page])
    hits = [_hit(r.message, m) for r, m in zip(page, marked, strict=True)]
    nxt = encode_position(scope, page[-1].position) if more and page else None
    return Page(hits, nxt)


def _permitted_rows(
    deps: SearchDeps,
    index: MessageIndex,
    user_id: str,
    folded: str,
    allowed: set[str],
    params: SearchParams,
    after: Position | None,
) -> list[ScoredMessage]:
    """One page (plus one row) of hits, every conversation on it confirmed as the user's."""
    confirmed_once = params.conversation_id is not None  # read consistently already
    for _ in range(MAX_REVOCATION_RETRIES):
        rows = list(index.search(folded, allowed, params.limit + 1, after))
        if confirmed_once or not rows:
            return rows
        on_page = {r.message.conversation_id for r in rows}
        confirmed = deps.memberships.confirm(user_id, on_page)
        revoked = on_page - confirmed
        if not revoked:
            return rows
        allowed -= revoked
        if not allowed:
            return []
    # Still revoking after the retries: drop what is left unconfirmed (a short page).
    confirmed = deps.memberships.confirm(user_id, {r.message.conversation_id for r in rows})
    return [r for r in rows if r.message.conversation_id in confirmed]


def _hit(message: IndexedMessage, marked: str) -> SearchHit:
    return SearchHit(
        conversation_id=message.conversation_id,
        message_id=message.message_id,
        author_id=message.author_id,
        created_at=message.created_at,
        edited_at=message.edited_at,
        text=safe_html(message.body),
        highlight=highlight(message.body, marked),
    )


# --- indexing ------------------------------------------------------------------------------


def apply_change(transaction: AbstractContextManager[SearchUow], change: MessageChange) -> bool:
    """Bring the index in step with one change of a message item; True if it changed.

    A removed item or a deleted message (tombstone) leaves a tombstone row; any
    other image replaces the indexed one if it is newer. Applying a change twice,
    or an older one after a newer one, changes nothing.
    """
    image = change.image
    with transaction as uow:
        if image is None or image.deleted_at is not None:
            changed = uow.index.tombstone(
                change.conversation_id, change.message_id, change.sequence
            )
        else:
            body = plain_text(image.text)
            message = IndexedMessage(
                conversation_id=image.conversation_id,
                message_id=image.message_id,
                author_id=image.author_id,
                created_at=image.created_at,
                edited_at=image.edited_at,
                body=body,
            )
            changed = uow.index.upsert(message, fold(body), change.sequence)
        uow.commit()
    return changed
