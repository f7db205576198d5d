"""Data access of message search: the index in PostgreSQL, memberships in the chat table.

The only search module that imports SQLAlchemy or boto3. The index is one table
(``chat.search_messages``, created by ``functions/chat/migrations``) queried with
SQLAlchemy Core through ``lwm_core.db``'s unit of work, and the text search
configuration ``chat.message_search`` (``simple`` behind ``unaccent``).

Rows are never deleted: a deleted or removed message becomes a tombstone (no
text, no vector, ``deleted``), so a replayed older image cannot resurrect it.
Every row remembers the stream sequence number of the image it holds
(``seq``); an upsert applies only when its sequence number is higher and its
edit time is not older.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    false,
    func,
    literal_column,
    select,
    text,
    true,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR, insert

from functions.chat.search import (
    MARK_START,
    MARK_STOP,
    IndexedMessage,
    Position,
    QueryShape,
    ScoredMessage,
)
from lwm_core.db import UnitOfWork

if TYPE_CHECKING:
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.elements import ColumnElement

SCHEMA = "chat"
CONFIG = f"{SCHEMA}.message_search"  # the text search configuration (migration 0001)
_CONFIG: Any = literal_column(f"'{CONFIG}'::regconfig")
# ts_rank_cd normalisation 1: divide by 1 + log(length), so a short message that is
# about the words outranks a long one that mentions them once.
RANK_NORMALISATION = 1
HEADLINE_OPTIONS = f"StartSel={MARK_START}, StopSel={MARK_STOP}, MaxWords=30, MinWords=12"
STATEMENT_TIMEOUT_MS = 5000  # the function's timeout is 10 s; a slow query is a 503

metadata = MetaData(schema=SCHEMA)

messages = Table(
    "search_messages",
    metadata,
    Column("conversation_id", String(64), primary_key=True),
    Column("message_id", String(64), primary_key=True),
    Column("author_id", String(64)),
    Column("created_at", DateTime(timezone=True)),
    Column("edited_at", DateTime(timezone=True)),
    Column("body", Text, nullable=False, server_default=""),
    Column("tsv", TSVECTOR),
    Column("deleted", Boolean, nullable=False, server_default=false()),
    Column("seq", Numeric(precision=40, scale=0), nullable=False),
    Column("indexed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("ix_search_messages_tsv", "tsv", postgresql_using="gin"),
    Index("ix_search_messages_conversation", "conversation_id", "created_at"),
)


def _query(folded_query: str) -> Any:
    return func.websearch_to_tsquery(_CONFIG, bindparam("q", folded_query, type_=Text))


class PostgresMessageIndex:
    """``MessageIndex`` over ``chat.search_messages``, inside a unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    @property
    def _s(self) -> Session:
        return self._uow.session

    def inspect(self, folded_query: str) -> QueryShape:
        q = _query(folded_query)
        row = self._s.execute(
            select(func.numnode(q).label("n"), (func.querytree(q) != "T").label("indexable"))
        ).one()
        return QueryShape(int(row.n), bool(row.indexable))

    def search(
        self,
        folded_query: str,
        conversation_ids: Collection[str],
        limit: int,
        after: Position | None,
    ) -> Sequence[ScoredMessage]:
        m = messages.c
        q = _query(folded_query)
        # float8, so the cursor's rank (a double) compares exactly with the next query's.
        rank: ColumnElement[Any] = cast(
            func.ts_rank_cd(m.tsv, q, RANK_NORMALISATION), Float(precision=53)
        )
        ids = bindparam("ids", sorted(conversation_ids), type_=ARRAY(String(64)))
        conditions: list[ColumnElement[bool]] = [
            m.tsv.bool_op("@@")(q),
            m.conversation_id == any_(ids),
            m.deleted.is_(False),
        ]
        if after is not None:
            conditions.append(
                tuple_(rank, m.created_at, m.conversation_id, m.message_id)
                < tuple_(
                    bindparam("after_rank", after.rank, type_=Float(precision=53)),
                    bindparam("after_at", after.created_at, type_=DateTime(timezone=True)),
                    bindparam("after_conversation", after.conversation_id, type_=String),
                    bindparam("after_message", after.message_id, type_=String),
                )
            )
        stmt = (
            select(
                m.conversation_id,
                m.message_id,
                m.author_id,
                m.created_at,
                m.edited_at,
                m.body,
                rank.label("rank"),
            )
            .where(and_(*conditions))
            .order_by(
                rank.desc(), m.created_at.desc(), m.conversation_id.desc(), m.message_id.desc()
            )
            .limit(limit)
        )
        self._s.execute(text(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}"))
        return [
            ScoredMessage(
                IndexedMessage(
                    conversation_id=r.conversation_id,
                    message_id=r.message_id,
                    author_id=r.author_id,
                    created_at=r.created_at.astimezone(UTC),
                    edited_at=r.edited_at.astimezone(UTC) if r.edited_at else None,
                    body=r.body,
                ),
                float(r.rank),
            )
            for r in self._s.execute(stmt)
        ]

    def headlines(self, folded_query: str, folded_texts: Sequence[str]) -> Sequence[str]:
        if not folded_texts:
            return []
        stmt = text(
            "SELECT ts_headline(CAST(:config AS regconfig), d.doc,"
            " websearch_to_tsquery(CAST(:config AS regconfig), :q), :options) AS marked"
            " FROM unnest(CAST(:docs AS text[])) WITH ORDINALITY AS d(doc, n) ORDER BY d.n"
        )
        params = {
            "config": CONFIG,
            "q": folded_query,
            "options": HEADLINE_OPTIONS,
            "docs": list(folded_texts),
        }
        return [str(r.marked) for r in self._s.execute(stmt, params)]

    def upsert(self, message: IndexedMessage, folded: str, sequence: int) -> bool:
        m = messages.c
        stmt = insert(messages).values(
            conversation_id=message.conversation_id,
            message_id=message.message_id,
            author_id=message.author_id,
            created_at=message.created_at,
            edited_at=message.edited_at,
            body=message.body,
            tsv=func.to_tsvector(_CONFIG, bindparam("folded", folded, type_=Text)),
            deleted=False,
            seq=sequence,
        )
        new = stmt.excluded
        upsert = stmt.on_conflict_do_update(
            index_elements=[m.conversation_id, m.message_id],
            set_={
                "author_id": new.author_id,
                "created_at": new.created_at,
                "edited_at": new.edited_at,
                "body": new.body,
                "tsv": new.tsv,
                "seq": new.seq,
                "indexed_at": func.now(),
            },
            where=and_(
                m.deleted.is_(False),
                m.seq < new.seq,
                func.coalesce(m.edited_at, m.created_at)
                <= func.coalesce(new.edited_at, new.created_at),
            ),
        ).returning(m.message_id)
        return self._s.execute(upsert).first() is not None

    def tombstone(self, conversation_id: str, message_id: str, sequence: int) -> bool:
        m = messages.c
        stmt = insert(messages).values(
            conversation_id=conversation_id,
            message_id=message_id,
            body="",
            tsv=None,
            deleted=True,
            seq=sequence,
        )
        new = stmt.excluded
        upsert = stmt.on_conflict_do_update(
            index_elements=[m.conversation_id, m.message_id],
            # A delete is final whatever its order: messages are never undeleted.
            set_={
                "body": "",
                "tsv": None,
                "deleted": true(),
                "seq": func.greatest(m.seq, new.seq),
                "indexed_at": func.now(),
            },
            where=m.deleted.is_(False),
        ).returning(m.message_id)
        return self._s.execute(upsert).first() is not None


class PostgresSearchUow(UnitOfWork):
    """The search unit of work: one transaction, the message index."""

    index: PostgresMessageIndex

    def __enter__(self) -> PostgresSearchUow:
        super().__enter__()
        self.index = PostgresMessageIndex(self)
        return self


# --- memberships (the chat table) -----------------------------------------------------


@cache
def dynamodb_client(region: str | None, endpoint: str | None) -> Any:
    """The sandbox's DynamoDB client (built once, reused by every request)."""
    import boto3  # lazy: the indexer never needs it
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=2)
    return boto3.session.Session().client(
        "dynamodb", region_name=region, endpoint_url=endpoint, config=config
    )


_BATCH_GET_MAX = 100  # BatchGetItem's limit of keys per call


class DynamoMemberships:
    """``Memberships`` from the chat table's member items (layout in ``functions.chat.data``).

    ``conversations_of`` reads the user's gsi1 partition (``USER#<id>``, sort keys
    ``ACT#...``) page after page; ``confirm`` reads the member items themselves
    (``CONV#<id>`` / ``MEMBER#<user>``) with consistent reads.
    """

    def __init__(self, client: Any, table_name: str, page_size: int | None = None) -> None:
        self._client = client
        self._table = table_name
        self._page_size = page_size  # None: DynamoDB's 1 MB pages

    def conversations_of(self, user_id: str) -> frozenset[str]:
        found: set[str] = set()
        start: dict[str, Any] | None = None
        while True:
            extra: dict[str, Any] = {}
            if start:
                extra["ExclusiveStartKey"] = start
            if self._page_size:
                extra["Limit"] = self._page_size
            out = self._client.query(
                TableName=self._table,
                IndexName="gsi1",
                KeyConditionExpression="gsi1pk = :pk AND begins_with(gsi1sk, :act)",
                ExpressionAttributeValues={":pk": {"S": f"USER#{user_id}"}, ":act": {"S": "ACT#"}},
                ProjectionExpression="conversation_id",
                **extra,
            )
            for item in out.get("Items", []):
                conversation = item.get("conversation_id", {}).get("S")
                if conversation:
                    found.add(conversation)
            start = out.get("LastEvaluatedKey")
            if not start:
                return frozenset(found)

    def confirm(self, user_id: str, conversation_ids: Collection[str]) -> frozenset[str]:
        wanted = sorted(set(conversation_ids))
        found: set[str] = set()
        for i in range(0, len(wanted), _BATCH_GET_MAX):
            keys = [
                {"pk": {"S": f"CONV#{cid}"}, "sk": {"S": f"MEMBER#{user_id}"}}
                for cid in wanted[i : i + _BATCH_GET_MAX]
            ]
            request: dict[str, Any] = {
                self._table: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "pk",
                }
            }
            while request:
                out = self._client.batch_get_item(RequestItems=request)
                for item in out.get("Responses", {}).get(self._table, []):
                    found.add(item["pk"]["S"].removeprefix("CONV#"))
                request = out.get("UnprocessedKeys") or {}
        return frozenset(found)
