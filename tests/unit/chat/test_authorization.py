"""Who may touch a conversation: every chat route and socket action, for every kind of caller.

Members may (whatever else the action then says); a user who never was a
member, and one who was removed, get ``conversation_not_found`` -- the same
answer as for a conversation that does not exist, so ids leak nothing. A
request is seen only by its two parties. The matrix is checked against the
declaration: a route or action added without a row here fails the test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from blueprint.platform import CHAT, CHAT_SOCKET, REALTIME
from functions.chat import api, logic, socket
from functions.chat import service as svc
from functions.chat.delivery import Delivery
from lwm_core.realtime import Caller
from lwm_core.web import Principal, current_principal

from .fakes import FakePusher, FakeWorld

OWNER, MEMBER, FORMER, STRANGER, MENTEE, MENTOR = (
    "owner",
    "member",
    "former",
    "stranger",
    "mentee",
    "mentor",
)

# Routes that act on the caller's own things, not on a conversation or a request.
SELF_SCOPED = {
    "GET /conversations",
    "POST /conversations/direct",
    "POST /conversations/groups",
    "GET /chat/settings",
    "PATCH /chat/settings",
    "GET /chat/blocks",
    "PUT /chat/blocks/{user_id}",
    "DELETE /chat/blocks/{user_id}",
    "POST /chat/requests",
    "GET /chat/requests",
}

# Conversation routes: (route key, body). {c} the conversation, {m} a message in it,
# {u} a member, {a} an uploaded attachment.
CONVERSATION_ROUTES: list[tuple[str, dict[str, Any] | None]] = [
    ("GET /conversations/{conversation_id}", None),
    ("GET /conversations/{conversation_id}/members", None),
    ("POST /conversations/{conversation_id}/members", {"user_ids": ["newcomer"]}),
    ("DELETE /conversations/{conversation_id}/members/{user_id}", None),
    ("POST /conversations/{conversation_id}/leave", None),
    ("GET /conversations/{conversation_id}/messages", None),
    ("POST /conversations/{conversation_id}/messages", {"text": "hi"}),
    ("PATCH /conversations/{conversation_id}/messages/{message_id}", {"text": "edited"}),
    ("DELETE /conversations/{conversation_id}/messages/{message_id}", None),
    ("POST /conversations/{conversation_id}/messages/{message_id}/reactions", {"emoji": "👍"}),
    ("POST /conversations/{conversation_id}/read", {"up_to_message_id": "{m}"}),
    (
        "POST /conversations/{conversation_id}/attachments",
        {"content_type": "application/pdf", "size": 10},
    ),
    ("GET /conversations/{conversation_id}/attachments/{attachment_id}", None),
]

REQUEST_ROUTES: list[tuple[str, dict[str, Any] | None]] = [
    ("GET /chat/requests/{request_id}", None),
    ("POST /chat/requests/{request_id}/accept", None),
    ("POST /chat/requests/{request_id}/decline", {}),
    ("POST /chat/requests/{request_id}/withdraw", None),
]

SOCKET_ACTIONS: dict[str, dict[str, Any]] = {
    "sendMessage": {"client_message_id": "k-1", "text": "hi"},
    "markRead": {"message_id": "{m}"},
    "markDelivered": {"message_id": "{m}"},
    "typing": {"state": "start"},
    "getPresence": {},
}
NOT_CONVERSATION_SCOPED = {"setPresence"}  # one's own presence


class Who:
    user_id = OWNER

    def principal(self) -> Principal:
        return Principal(self.user_id, frozenset({"mentee", "mentor"}), "mentee", True)


class Presence:
    """The connections store's presence calls, everyone offline."""

    def set_away(self, connection_id: str, user_id: str, away: bool) -> bool:
        return True

    def presence(self, user_ids: Any) -> dict[str, str]:
        return dict.fromkeys(user_ids, "offline")


@pytest.fixture
def scene(world: FakeWorld, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A group (owner, member; former was removed) with a message and an upload."""
    pusher = FakePusher()
    delivery = Delivery(world.deps, pusher)  # type: ignore[arg-type]
    monkeypatch.setattr(svc, "deps", lambda: world.deps)
    monkeypatch.setattr(svc, "delivery", lambda: delivery)
    monkeypatch.setattr(socket, "sandbox_pusher", lambda: pusher)
    monkeypatch.setattr(socket, "_store", Presence)
    group = logic.create_group(world.deps, OWNER, "Cohort", [MEMBER, FORMER, "newcomer-2"]).value
    logic.remove_member(world.deps, OWNER, group.id, FORMER)
    message = logic.send_message(world.deps, OWNER, group.id, "welcome").message
    ticket = logic.start_upload(world.deps, OWNER, group.id, "application/pdf", 10)
    world.attachments.upload(ticket.attachment.key, b"x" * 10, "application/pdf")
    request = logic.send_request(world.deps, MENTEE, MENTOR, "hello").value
    return {
        "conversation_id": group.id,
        "message_id": message.id,
        "user_id": "newcomer-2",
        "attachment_id": ticket.attachment_id,
        "request_id": request.id,
    }


@pytest.fixture
async def client(world: FakeWorld) -> AsyncIterator[tuple[httpx.AsyncClient, Who]]:
    who = Who()
    api.app.dependency_overrides[api._deps] = lambda: world.deps
    api.app.dependency_overrides[current_principal] = who.principal
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://chat.test") as c:
        yield c, who
    api.app.dependency_overrides.clear()


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.replace("{m}", ids["message_id"])
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


async def _call(
    client: httpx.AsyncClient, route: str, body: dict[str, Any] | None, ids: dict[str, str]
) -> httpx.Response:
    method, template = route.split(" ", 1)
    path = template.format(**ids)
    return await client.request(method, path, json=_fill(body, ids) if body is not None else None)


def test_the_matrix_covers_every_declared_route_and_action() -> None:
    declared = {r.key for r in CHAT.routes}
    covered = SELF_SCOPED | {r for r, _ in CONVERSATION_ROUTES} | {r for r, _ in REQUEST_ROUTES}
    assert declared == covered
    actions = {r.key for r in REALTIME.routes if r.function == CHAT_SOCKET.name}
    assert actions == set(SOCKET_ACTIONS) | NOT_CONVERSATION_SCOPED


@pytest.mark.parametrize("outsider", [STRANGER, FORMER])
@pytest.mark.parametrize(("route", "body"), CONVERSATION_ROUTES, ids=lambda v: str(v)[:60])
async def test_outsiders_cannot_tell_a_conversation_exists(
    client: tuple[httpx.AsyncClient, Who],
    scene: dict[str, str],
    outsider: str,
    route: str,
    body: dict[str, Any] | None,
) -> None:
    http, who = client
    who.user_id = outsider
    answer = await _call(http, route, body, scene)
    assert answer.status_code == 404, answer.text
    assert answer.json()["code"] == "conversation_not_found"


@pytest.mark.parametrize("member", [OWNER, MEMBER])
@pytest.mark.parametrize(("route", "body"), CONVERSATION_ROUTES, ids=lambda v: str(v)[:60])
async def test_members_get_past_the_membership_check(
    client: tuple[httpx.AsyncClient, Who],
    scene: dict[str, str],
    member: str,
    route: str,
    body: dict[str, Any] | None,
) -> None:
    http, who = client
    who.user_id = member
    answer = await _call(http, route, body, scene)
    assert answer.status_code < 500, answer.text
    if answer.status_code == 404:
        assert answer.json()["code"] != "conversation_not_found", route
    if member == MEMBER and answer.status_code == 403:  # owner-only or author-only actions
        assert answer.json()["code"] in {"not_group_owner", "not_message_author"}, answer.text


@pytest.mark.parametrize("outsider", [STRANGER, MEMBER])
@pytest.mark.parametrize(("route", "body"), REQUEST_ROUTES, ids=lambda v: str(v)[:60])
async def test_only_the_two_parties_see_a_request(
    client: tuple[httpx.AsyncClient, Who],
    scene: dict[str, str],
    outsider: str,
    route: str,
    body: dict[str, Any] | None,
) -> None:
    http, who = client
    who.user_id = outsider
    answer = await _call(http, route, body, scene)
    assert answer.status_code == 404 and answer.json()["code"] == "request_not_found"
    who.user_id = MENTOR if "withdraw" not in route else MENTEE
    assert (await _call(http, route, body, scene)).status_code < 400


def _socket(user: str, action: str, ids: dict[str, str]) -> dict[str, Any] | None:
    payload = {"action": action, "conversation_id": ids["conversation_id"]}
    payload.update(_fill(SOCKET_ACTIONS[action], ids))
    caller = Caller(f"conn-{user}", user, frozenset(), action, "MESSAGE")
    import json

    return socket.answer(caller, json.dumps(payload))


@pytest.mark.parametrize("outsider", [STRANGER, FORMER])
@pytest.mark.parametrize("action", sorted(SOCKET_ACTIONS))
def test_outsiders_are_refused_on_every_socket_action(
    scene: dict[str, str], outsider: str, action: str
) -> None:
    reply = _socket(outsider, action, scene)
    assert reply is not None and reply["type"] == "error", reply
    assert reply["code"] == "conversation_not_found" and reply["action"] == action


@pytest.mark.parametrize("member", [OWNER, MEMBER])
@pytest.mark.parametrize("action", sorted(SOCKET_ACTIONS))
def test_members_may_use_every_socket_action(
    scene: dict[str, str], member: str, action: str
) -> None:
    reply = _socket(member, action, scene)
    assert reply is None or reply["type"] != "error", reply
