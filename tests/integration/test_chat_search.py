"""Message search end to end: the indexer and the search handler against PostgreSQL and moto.

The indexer gets DynamoDB Streams events built from the chat item layout; the
search handler gets API Gateway v2 events and reads memberships from the chat
table (member items written in the chat layout). The messages exist only in
the events, never in the table, so the stream of the shared table cannot race
these tests. Ids carry a per-test prefix: the database and table are shared.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from functions.chat import data
from functions.chat import search_service as svc
from functions.chat.domain import Member, MemberRole, Message
from functions.chat.search_store import DynamoMemberships
from local_runtime import LocalPlatform
from tests.events import claims_for, http_event
from tests.events.chat_stream import message_record, stream_event
from tests.integration.conftest import LambdaContext, Reply
from tests.stack import boto, register

pytestmark = pytest.mark.stack

_PROCESS_KEYS = {"PATH", "LANG", "TZ", "PYTHONPATH", "PYTHONUNBUFFERED", "LAMBDA_TASK_ROOT"}
T0 = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
Handler = Callable[[dict[str, Any], Any], Any]


def _database_url(local: LocalPlatform) -> str:
    url = local.endpoints.database_url
    assert url is not None
    return url.replace("postgresql+psycopg://", "postgresql://")


def _environment(local: LocalPlatform, name: str) -> dict[str, str]:
    fn = local.runtime.find(name)
    assert fn is not None, f"{name} is not declared"
    env = dict(local.runtime.pool(fn).spec.environment)
    return {k: v for k, v in env.items() if k not in _PROCESS_KEYS}


@pytest.fixture(scope="module")
def handlers(local: LocalPlatform) -> Iterator[tuple[Handler, Handler]]:
    """(search, indexer) handlers imported with their functions' environments."""
    env = {**_environment(local, "chat-search-indexer"), **_environment(local, "chat-search")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    caches = (svc.settings, svc.deps, svc.indexer_settings, svc.indexer_url)
    try:
        from functions.chat.search_handler import handler as search_handler
        from functions.chat.search_index import handler as index_handler

        for cached in caches:
            cached.cache_clear()
        yield search_handler, index_handler
    finally:
        for cached in caches:
            cached.cache_clear()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class Chat:
    """One test's users, conversations and messages over the shared stack."""

    local: LocalPlatform
    search_handler: Handler
    index_handler: Handler
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    seq: int = 1_000

    @property
    def table(self) -> str:
        return self.local.endpoints.resources.tables["chat"]

    def id(self, name: str) -> str:
        return f"{name}-{self.prefix}"

    def join(self, user: str, conversation: str) -> None:
        member = Member(self.id(conversation), self.id(user), MemberRole.MEMBER, T0)
        item = data._member_item(member, f"ACT#{data._ts(T0)}#{member.conversation_id}")
        boto(self.local, "dynamodb").put_item(TableName=self.table, Item=data._to_wire(item))

    def leave(self, user: str, conversation: str) -> None:
        key = {"pk": f"CONV#{self.id(conversation)}", "sk": f"MEMBER#{self.id(user)}"}
        boto(self.local, "dynamodb").delete_item(TableName=self.table, Key=data._to_wire(key))

    def message(self, conversation: str, name: str, text: str, minute: int = 0) -> Message:
        return Message(
            self.id(name),
            self.id(conversation),
            self.id("ada"),
            text,
            T0 + timedelta(minutes=minute),
        )

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def index(self, *records: dict[str, Any]) -> dict[str, Any]:
        context = LambdaContext(function_name="lwm-local-chat-search-indexer")
        return dict(self.index_handler(stream_event(*records), context))

    def insert(self, *messages: Message) -> None:
        records = [message_record("INSERT", self.next_seq(), m) for m in messages]
        assert self.index(*records) == {"batchItemFailures": []}

    def stored(self, message: Message) -> tuple[str, str | None, bool]:
        """The index row of ``message``: (body, tsv, deleted)."""
        with psycopg.connect(_database_url(self.local)) as conn:
            row = conn.execute(
                "SELECT body, tsv::text, deleted FROM chat.search_messages"
                " WHERE conversation_id = %s AND message_id = %s",
                (message.conversation_id, message.id),
            ).fetchone()
        assert row is not None
        return row[0], row[1], row[2]

    def search(self, user: str, **query: str) -> Reply:
        event = http_event("GET", "/chat/search", query=query, claims=claims_for(self.id(user)))
        result: dict[str, Any] = self.search_handler(
            event, LambdaContext(aws_request_id=str(uuid.uuid4()))
        )
        text = result.get("body") or ""
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        return Reply(result["statusCode"], headers, json.loads(text) if text else None)

    def found(self, user: str, q: str, **query: str) -> list[str]:
        reply = self.search(user, q=q, **query)
        assert reply.status == 200, reply.body
        return [h["message_id"].removesuffix(f"-{self.prefix}") for h in reply.body["items"]]


@pytest.fixture
def chat(local: LocalPlatform, handlers: tuple[Handler, Handler]) -> Chat:
    return Chat(local, *handlers)


# --- the schema -------------------------------------------------------------------------


def test_migrations_gave_chat_its_own_schema_and_version_table(local: LocalPlatform) -> None:
    with psycopg.connect(_database_url(local)) as conn:
        tables = {
            (s, t)
            for s, t in conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables"
                " WHERE table_name LIKE 'alembic_version%' OR table_name = 'search_messages'"
            )
        }
        assert {("chat", "alembic_version_chat"), ("chat", "search_messages")} <= tables
        assert ("users", "alembic_version_users") in tables
        version = conn.execute("SELECT version_num FROM chat.alembic_version_chat").fetchone()
        assert version == ("0001",)
        unaccent = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'unaccent'")
        assert unaccent.fetchone() is not None


# --- indexing ---------------------------------------------------------------------------


def test_an_indexed_message_is_found_by_members_with_a_safe_highlight(chat: Chat) -> None:
    # Given Ada and Ben in a conversation and a message with escaped markup
    chat.join("ada", "c1")
    chat.join("ben", "c1")
    chat.insert(chat.message("c1", "m1", "Our Caf&eacute; &lt;script&gt; budget &amp; plan"))
    # When Ben searches without the accent
    reply = chat.search("ben", q="cafe budget")
    # Then he finds it, with safe text and <mark> around the matches only
    assert reply.status == 200, reply.body
    (hit,) = reply.body["items"]
    assert hit["conversation_id"] == chat.id("c1") and hit["author_id"] == chat.id("ada")
    assert hit["created_at"] == "2026-05-04T10:00:00Z"
    assert hit["text"] == "Our Café &lt;script&gt; budget &amp; plan"
    assert hit["highlight"] == "Our <mark>Café</mark> &lt;script&gt; <mark>budget</mark> &amp; plan"


def test_a_long_message_is_highlighted_by_an_excerpt_around_the_match(chat: Chat) -> None:
    chat.join("ada", "c1")
    words = [f"w{i}" for i in range(80)]
    words[40] = "Milestone"
    chat.insert(chat.message("c1", "m1", " ".join(words)))
    (hit,) = chat.search("ada", q="milestone").body["items"]
    assert hit["text"] == " ".join(words)
    assert hit["highlight"].startswith("…") and hit["highlight"].endswith("…")
    assert "<mark>Milestone</mark>" in hit["highlight"]
    assert len(hit["highlight"]) < len(hit["text"]) / 2


def test_a_message_without_text_is_indexed_as_a_live_row(chat: Chat) -> None:
    # An attachment-only message has empty text: a live row with an empty vector.
    chat.join("ada", "c1")
    empty = chat.message("c1", "m1", "")
    chat.insert(empty)
    body, tsv, deleted = chat.stored(empty)
    assert (body, tsv, deleted) == ("", "", False)


def test_an_edit_reindexes_the_message(chat: Chat) -> None:
    chat.join("ada", "c1")
    original = chat.message("c1", "m1", "meet on monday")
    chat.insert(original)
    edited = replace(original, text="meet on friday", edited_at=T0 + timedelta(minutes=3))
    assert chat.index(message_record("MODIFY", chat.next_seq(), edited, original)) == {
        "batchItemFailures": []
    }
    assert chat.found("ada", "monday") == []
    assert chat.found("ada", "friday") == ["m1"]
    (hit,) = chat.search("ada", q="friday").body["items"]
    assert hit["edited_at"] == "2026-05-04T10:03:00Z"


def test_a_deleted_message_and_a_removed_item_leave_the_index(chat: Chat) -> None:
    chat.join("ada", "c1")
    one, two = chat.message("c1", "m1", "draft one"), chat.message("c1", "m2", "draft two")
    chat.insert(one, two)
    tombstone = replace(one, text="", deleted_at=T0 + timedelta(minutes=5))
    assert chat.index(
        message_record("MODIFY", chat.next_seq(), tombstone, one),
        message_record("REMOVE", chat.next_seq(), None, two),
    ) == {"batchItemFailures": []}
    assert chat.found("ada", "draft") == []
    assert chat.stored(one) == chat.stored(two) == ("", None, True)


def test_out_of_order_and_duplicate_records_are_harmless(chat: Chat) -> None:
    # Given the insert (seq 1), an edit (seq 2), a delete of another message (seq 4)
    chat.join("ada", "c1")
    first = chat.message("c1", "m1", "alpha version")
    edit = replace(first, text="beta version", edited_at=T0 + timedelta(minutes=1))
    gone = chat.message("c1", "m2", "gamma version")
    gone_tomb = replace(gone, text="", deleted_at=T0 + timedelta(minutes=2))
    s1, s2, s3, s4 = (chat.next_seq() for _ in range(4))
    # When they arrive late, twice, and in the wrong order
    result = chat.index(
        message_record("MODIFY", s2, edit, first),
        message_record("INSERT", s1, first),
        message_record("MODIFY", s4, gone_tomb, gone),
        message_record("INSERT", s3, gone),
        message_record("MODIFY", s2, edit, first),
    )
    # Then the newest state of each message is what is indexed
    assert result == {"batchItemFailures": []}
    assert chat.found("ada", "alpha") == []
    assert chat.found("ada", "beta") == ["m1"]
    assert chat.found("ada", "gamma") == []


def test_an_older_sequence_number_loses_even_at_the_same_edit_time(chat: Chat) -> None:
    chat.join("ada", "c1")
    at = T0 + timedelta(minutes=1)
    newer = replace(chat.message("c1", "m1", "kappa"), edited_at=at)
    older = replace(newer, text="lambda")
    s_old, s_new = chat.next_seq(), chat.next_seq()
    chat.index(message_record("MODIFY", s_new, newer), message_record("MODIFY", s_old, older))
    assert chat.found("ada", "kappa") == ["m1"]
    assert chat.found("ada", "lambda") == []


def test_an_earlier_edit_never_replaces_a_later_one_whatever_its_number(chat: Chat) -> None:
    # Sequence numbers of another stream (a restored table) need not compare; edit times do.
    chat.join("ada", "c1")
    later = replace(chat.message("c1", "m1", "omicron"), edited_at=T0 + timedelta(minutes=9))
    earlier = replace(later, text="sigma", edited_at=T0 + timedelta(minutes=2))
    chat.index(message_record("MODIFY", chat.next_seq(), later))
    chat.index(message_record("MODIFY", chat.next_seq(), earlier))
    assert chat.found("ada", "omicron") == ["m1"]
    assert chat.found("ada", "sigma") == []
    # and a deleted message stays deleted, its text gone from the index
    chat.index(message_record("REMOVE", chat.next_seq(), None, later))
    chat.index(message_record("MODIFY", chat.next_seq(), later))
    assert chat.found("ada", "omicron") == []
    assert chat.stored(later) == ("", None, True)


def test_a_malformed_record_fails_alone(chat: Chat) -> None:
    chat.join("ada", "c1")
    bad = message_record("INSERT", chat.next_seq(), chat.message("c1", "m2", "zeta"))
    del bad["dynamodb"]["NewImage"]["author_id"]
    good = message_record("INSERT", chat.next_seq(), chat.message("c1", "m3", "zeta"))
    result = chat.index(bad, good)
    assert result == {"batchItemFailures": [{"itemIdentifier": bad["dynamodb"]["SequenceNumber"]}]}
    assert chat.found("ada", "zeta") == ["m3"]


# --- permissions ------------------------------------------------------------------------


def test_only_members_find_and_removed_members_stop_finding(chat: Chat) -> None:
    chat.join("ada", "c1")
    chat.join("ben", "c1")
    chat.join("eve", "c2")
    chat.insert(chat.message("c1", "m1", "salary negotiation"))
    assert chat.found("eve", "salary") == []
    assert chat.found("ben", "salary") == ["m1"]
    # When Ben is removed from the conversation, Then he no longer finds its messages
    chat.leave("ben", "c1")
    assert chat.found("ben", "salary") == []
    assert chat.found("ada", "salary") == ["m1"]


def test_a_conversation_filter_is_limited_to_the_callers_conversations(chat: Chat) -> None:
    chat.join("ada", "c1")
    chat.join("ada", "c2")
    chat.join("eve", "c3")
    chat.insert(
        chat.message("c1", "m1", "roadmap"),
        chat.message("c2", "m2", "roadmap"),
        chat.message("c3", "m3", "roadmap"),
    )
    assert sorted(chat.found("ada", "roadmap")) == ["m1", "m2"]
    assert chat.found("ada", "roadmap", conversation_id=chat.id("c2")) == ["m2"]
    reply = chat.search("ada", q="roadmap", conversation_id=chat.id("c3"))
    assert (reply.status, reply.body["code"]) == (404, "conversation_not_found")


def test_memberships_are_read_through_every_page(chat: Chat, local: LocalPlatform) -> None:
    # Given Ada in 23 conversations, read 5 member items per page
    for i in range(23):
        chat.join("ada", f"g{i}")
    reader = DynamoMemberships(boto(local, "dynamodb"), chat.table, page_size=5)
    # Then every one of them is listed, and confirmed with consistent reads
    expected = {chat.id(f"g{i}") for i in range(23)}
    assert reader.conversations_of(chat.id("ada")) == expected
    assert reader.confirm(chat.id("ada"), [*expected, chat.id("nope")]) == expected
    # And a search reaches a message of the last of them
    chat.insert(chat.message("g22", "m1", "needle"))
    assert chat.found("ada", "needle") == ["m1"]


# --- semantics ----------------------------------------------------------------------------


def test_query_syntax_phrases_exclusions_or_and_accents(chat: Chat) -> None:
    chat.join("ada", "c1")
    chat.insert(
        chat.message("c1", "m1", "Jos&eacute; sent the final report", minute=1),
        chat.message("c1", "m2", "the report is not final yet", minute=2),
        chat.message("c1", "m3", "Stra&szlig;e und Caf&eacute;", minute=3),
        chat.message("c1", "m4", "Привет, как дела?", minute=4),
    )
    assert chat.found("ada", '"final report"') == ["m1"]
    assert chat.found("ada", "report -yet") == ["m1"]
    assert sorted(chat.found("ada", "jose OR strasse")) == ["m1", "m3"]
    assert chat.found("ada", "CAFE") == ["m3"]
    assert chat.found("ada", "ПРИВЕТ") == ["m4"]


def test_relevance_first_then_newest_and_pages_by_cursor(chat: Chat) -> None:
    chat.join("ada", "c1")
    chat.insert(
        chat.message("c1", "weak", "a long message that mentions the launch once among words", 1),
        chat.message("c1", "old", "launch launch", minute=2),
        chat.message("c1", "new", "launch launch", minute=3),
        *(chat.message("c1", f"n{i}", f"launch note {i} of the series", 10 + i) for i in range(4)),
    )
    first = chat.search("ada", q="launch", limit="2")
    assert first.status == 200
    found = [h["message_id"].removesuffix(f"-{chat.prefix}") for h in first.body["items"]]
    assert found == ["new", "old"]
    cursor = first.body["next_cursor"]
    while cursor:
        page = chat.search("ada", q="launch", limit="2", cursor=cursor)
        assert page.status == 200, page.body
        found += [h["message_id"].removesuffix(f"-{chat.prefix}") for h in page.body["items"]]
        cursor = page.body["next_cursor"]
    assert found[:2] == ["new", "old"] and found[-1] == "weak"
    assert sorted(found) == sorted(["weak", "old", "new", "n0", "n1", "n2", "n3"])
    assert found[2:6] == ["n3", "n2", "n1", "n0"]  # same relevance: newest first


# --- bad input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({}, 422, "validation_failed"),
        ({"q": ""}, 422, "validation_failed"),
        ({"q": "x" * 201}, 422, "validation_failed"),
        ({"q": "   "}, 422, "invalid_query"),
        ({"q": "-only -exclusions"}, 422, "invalid_query"),
        ({"q": "!!!"}, 422, "invalid_query"),
        ({"q": "ok", "limit": "0"}, 422, "validation_failed"),
        ({"q": "ok", "limit": "many"}, 422, "validation_failed"),
        ({"q": "ok", "page": "2"}, 422, "validation_failed"),
        ({"q": "ok", "cursor": "abc"}, 400, "invalid_cursor"),
    ],
)
def test_bad_input_is_a_problem_never_a_500(
    chat: Chat, query: dict[str, str], status: int, code: str
) -> None:
    chat.join("ada", "c1")
    reply = chat.search("ada", **query)
    assert (reply.status, reply.body["code"]) == (status, code), reply.body
    assert reply.headers["content-type"].startswith("application/problem+json")


# --- through the local gateway ------------------------------------------------------------


def test_the_route_is_served_by_the_gateway_with_a_real_token(
    chat: Chat, api: httpx.Client, aws_endpoint: str
) -> None:
    # Given a registered account that is a member of a conversation with an indexed message
    account = register(api, aws_endpoint)
    member = Member(chat.id("c1"), account.id, MemberRole.MEMBER, T0)
    item = data._member_item(member, f"ACT#{data._ts(T0)}#{member.conversation_id}")
    boto(chat.local, "dynamodb").put_item(TableName=chat.table, Item=data._to_wire(item))
    chat.insert(chat.message("c1", "m1", "through the gateway"))
    # When it searches through the HTTP API (JWT authorizer, the function's own sandbox)
    reply = api.get("/chat/search", params={"q": "gateway"}, headers=account.auth)
    # Then the message is found
    assert reply.status_code == 200, reply.text
    assert [h["message_id"] for h in reply.json()["items"]] == [chat.id("m1")]
    # And without a token the gateway refuses the call
    assert api.get("/chat/search", params={"q": "gateway"}).status_code == 401


def test_a_message_written_to_the_table_is_found_through_its_stream(
    chat: Chat, api: httpx.Client, aws_endpoint: str
) -> None:
    # Given a member of a conversation, and a message item the chat service wrote
    account = register(api, aws_endpoint)
    member = Member(chat.id("c1"), account.id, MemberRole.MEMBER, T0)
    dynamodb = boto(chat.local, "dynamodb")
    item = data._member_item(member, f"ACT#{data._ts(T0)}#{member.conversation_id}")
    dynamodb.put_item(TableName=chat.table, Item=data._to_wire(item))
    message = replace(chat.message("c1", "m1", "streamed &amp; indexed"), author_id=account.id)
    dynamodb.put_item(TableName=chat.table, Item=data._to_wire(data._message_item(message)))
    # When the table's stream has reached the indexer (the local event source mapping)
    found: list[str] = []
    deadline = time.monotonic() + 20
    while not found and time.monotonic() < deadline:
        reply = api.get("/chat/search", params={"q": "streamed"}, headers=account.auth)
        assert reply.status_code == 200, reply.text
        found = [h["message_id"] for h in reply.json()["items"]]
        time.sleep(0.2)
    # Then the search finds it
    assert found == [chat.id("m1")]
    # And its deletion (a tombstone image) takes it out again
    tombstone = replace(message, text="", deleted_at=T0 + timedelta(minutes=1))
    dynamodb.put_item(TableName=chat.table, Item=data._to_wire(data._message_item(tombstone)))
    deadline = time.monotonic() + 20
    while found and time.monotonic() < deadline:
        time.sleep(0.2)
        reply = api.get("/chat/search", params={"q": "streamed"}, headers=account.auth)
        found = [h["message_id"] for h in reply.json()["items"]]
    assert found == []
