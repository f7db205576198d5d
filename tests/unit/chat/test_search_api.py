"""The search route over the logic and its fakes: strict parameters, problem codes, shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import httpx
import pytest

from functions.chat import search, search_api
from functions.chat.search import MessageChange, MessageImage, SearchDeps
from lwm_core.web import Principal, current_principal

from .search_fakes import FakeMemberships, FakeMessageIndex, FakeSearchUow

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def index() -> FakeMessageIndex:
    fake = FakeMessageIndex()
    image = MessageImage("c1", "m1", "ben", "Budget &amp; <b>plan</b>", T0, None, None)
    search.apply_change(FakeSearchUow(fake), MessageChange("c1", "m1", 1, image))
    return fake


@pytest.fixture
def members() -> FakeMemberships:
    fake = FakeMemberships()
    fake.join("ada", "c1")
    fake.join("ben", "c2")
    return fake


@pytest.fixture
def app(index: FakeMessageIndex, members: FakeMemberships) -> Iterator[None]:
    deps = SearchDeps(uow=lambda: FakeSearchUow(index), memberships=members)
    principal = Principal("ada", frozenset({"mentee"}), "mentee", True)
    search_api.app.dependency_overrides[search_api._deps] = lambda: deps
    search_api.app.dependency_overrides[current_principal] = lambda: principal
    yield
    search_api.app.dependency_overrides.clear()


@pytest.fixture
async def client(app: None) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=search_api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://search.test") as c:
        yield c


async def test_a_search_returns_hits_with_safe_text(client: httpx.AsyncClient) -> None:
    reply = await client.get("/chat/search", params={"q": "budget"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["next_cursor"] is None
    (hit,) = body["items"]
    assert hit == {
        "conversation_id": "c1",
        "message_id": "m1",
        "author_id": "ben",
        "created_at": "2026-03-01T09:00:00Z",
        "edited_at": None,
        "text": "Budget &amp; &lt;b&gt;plan&lt;/b&gt;",
        "highlight": "<mark>Budget</mark> &amp; &lt;b&gt;plan&lt;/b&gt;",
    }


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({}, ["query", "q"]),
        ({"q": ""}, ["query", "q"]),
        ({"q": "x" * (search.MAX_QUERY_CHARS + 1)}, ["query", "q"]),
        ({"q": "budget", "limit": "0"}, ["query", "limit"]),
        ({"q": "budget", "limit": str(search.MAX_LIMIT + 1)}, ["query", "limit"]),
        ({"q": "budget", "limit": "ten"}, ["query", "limit"]),
        ({"q": "budget", "conversation_id": "no/slashes"}, ["query", "conversation_id"]),
        ({"q": "budget", "sort": "newest"}, ["query", "sort"]),
    ],
)
async def test_bad_parameters_are_a_422_problem(
    client: httpx.AsyncClient, params: dict[str, str], loc: list[str]
) -> None:
    reply = await client.get("/chat/search", params=params)
    assert reply.status_code == 422, reply.text
    assert reply.headers["content-type"].startswith("application/problem+json")
    body = reply.json()
    assert body["code"] == "validation_failed"
    assert [e["loc"] for e in body["errors"]] == [loc]


@pytest.mark.parametrize("q", ["   ", "-tea", '""', "a\x00b"])
async def test_a_query_with_nothing_to_find_is_invalid_query(
    client: httpx.AsyncClient, q: str
) -> None:
    reply = await client.get("/chat/search", params={"q": q})
    assert reply.status_code == 422, reply.text
    assert reply.json()["code"] == "invalid_query"
    assert reply.json()["errors"][0]["loc"] == ["query", "q"]


async def test_a_cursor_we_did_not_issue_is_a_400(client: httpx.AsyncClient) -> None:
    reply = await client.get("/chat/search", params={"q": "budget", "cursor": "bogus"})
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalid_cursor"


async def test_someone_elses_conversation_is_not_found(client: httpx.AsyncClient) -> None:
    reply = await client.get("/chat/search", params={"q": "budget", "conversation_id": "c2"})
    assert reply.status_code == 404
    assert reply.json()["code"] == "conversation_not_found"
