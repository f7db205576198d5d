"""The chat REST routes over the logic and its fakes: shapes, status codes, events, pushes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from functions.chat import api
from functions.chat import service as svc
from functions.chat.delivery import Delivery
from lwm_core.web import Principal, current_principal

from .fakes import FakePusher, FakeWorld


class Caller:
    """Who the routes think is calling (the JWT authorizer's job in AWS)."""

    def __init__(self) -> None:
        self.user_id = "ada"

    def principal(self) -> Principal:
        return Principal(self.user_id, frozenset({"mentee", "mentor"}), "mentee", True)


@pytest.fixture
def pusher(monkeypatch: pytest.MonkeyPatch, world: FakeWorld) -> FakePusher:
    """Live delivery through the real ``Delivery`` onto a fake ``@connections``."""
    fake = FakePusher({"ada": ["ada-phone"], "ben": ["ben-laptop"]})
    delivery = Delivery(world.deps, fake)  # type: ignore[arg-type]
    monkeypatch.setattr(svc, "delivery", lambda: delivery)
    return fake


def committed_events(world: FakeWorld) -> list[Any]:
    """The events committed to the outbox, in order (the bus is fed from it)."""
    return [world.db.outbox[k] for k in sorted(world.db.outbox)]


@pytest.fixture
def caller(world: FakeWorld) -> Iterator[Caller]:
    who = Caller()
    api.app.dependency_overrides[api._deps] = lambda: world.deps
    api.app.dependency_overrides[current_principal] = who.principal
    yield who
    api.app.dependency_overrides.clear()


@pytest.fixture
async def client(caller: Caller, pusher: FakePusher) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat.test") as c:
        yield c


async def _request_and_accept(client: httpx.AsyncClient, caller: Caller) -> dict[str, Any]:
    caller.user_id = "ada"
    sent = await client.post("/chat/requests", json={"mentor_id": "ben", "text": "Hi <b>Ben</b>"})
    assert sent.status_code == 201, sent.text
    caller.user_id = "ben"
    accepted = await client.post(f"/chat/requests/{sent.json()['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    body: dict[str, Any] = accepted.json()
    return body


async def test_a_request_accepted_opens_the_conversation_with_its_message(
    client: httpx.AsyncClient, caller: Caller, world: FakeWorld, pusher: FakePusher
) -> None:
    # When Ada asks Ben and Ben accepts
    accepted = await _request_and_accept(client, caller)
    # Then the conversation holds Ada's first message, sanitized
    assert accepted["request"]["status"] == "accepted"
    assert accepted["message"]["author_id"] == "ada"
    assert accepted["message"]["text"] == "Hi Ben"
    # And the events were committed to the outbox with the changes
    kinds = [type(e).__name__ for e in committed_events(world)]
    assert kinds == ["RequestSent", "RequestAnswered", "MessagePosted"]
    # And each was pushed live: the request to Ben, the answer to both, the message to both
    ben = [f["type"] for f in pusher.frames("ben-laptop")]
    ada = [f["type"] for f in pusher.frames("ada-phone")]
    assert ben == ["request.new", "request.answered", "message.new"]
    assert ada == ["request.answered", "message.new"]
    assert pusher.frames("ben-laptop")[-1]["message"]["text"] == "Hi Ben"


async def test_sending_is_idempotent_on_the_client_message_id(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    conversation = (await _request_and_accept(client, caller))["conversation"]["id"]
    body = {"text": "see you at 5", "client_message_id": "m-1"}
    first = await client.post(f"/conversations/{conversation}/messages", json=body)
    again = await client.post(f"/conversations/{conversation}/messages", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


async def test_history_and_unread_counts(client: httpx.AsyncClient, caller: Caller) -> None:
    # Given Ben sent three messages after accepting
    conversation = (await _request_and_accept(client, caller))["conversation"]["id"]
    ids = []
    for n in range(3):
        sent = await client.post(f"/conversations/{conversation}/messages", json={"text": f"m{n}"})
        ids.append(sent.json()["id"])
    # When Ada lists her conversations and catches up after the first message
    caller.user_id = "ada"
    listed = (await client.get("/conversations")).json()["items"]
    after = await client.get(f"/conversations/{conversation}/messages", params={"after": ids[0]})
    # Then three are unread, and the catch-up returns the rest oldest first
    assert listed[0]["id"] == conversation and listed[0]["unread"] == 3
    assert [m["id"] for m in after.json()["items"]] == ids[1:]
    # When she marks them read / Then nothing is unread
    read = await client.post(
        f"/conversations/{conversation}/read", json={"up_to_message_id": ids[-1]}
    )
    assert read.status_code == 200
    assert (await client.get(f"/conversations/{conversation}")).json()["unread"] == 0


async def test_non_members_get_404_and_bad_bodies_422(
    client: httpx.AsyncClient, caller: Caller
) -> None:
    conversation = (await _request_and_accept(client, caller))["conversation"]["id"]
    caller.user_id = "mallory"
    peek = await client.get(f"/conversations/{conversation}/messages")
    assert peek.status_code == 404 and peek.json()["code"] == "conversation_not_found"
    caller.user_id = "ada"
    bad = await client.post(f"/conversations/{conversation}/messages", json={"txt": "typo"})
    assert bad.status_code == 422 and bad.json()["code"] == "validation_failed"


async def test_blocks_stop_requests(client: httpx.AsyncClient, caller: Caller) -> None:
    caller.user_id = "ben"
    assert (await client.put("/chat/blocks/ada")).status_code == 204
    caller.user_id = "ada"
    refused = await client.post("/chat/requests", json={"mentor_id": "ben", "text": "hello?"})
    assert refused.status_code == 403 and refused.json()["code"] == "blocked"
