"""Chat over the socket end to end: the local WebSocket API, the chat functions, DynamoDB.

Every client here is a real ``websockets`` connection authorized with a real
access token; messages go through the gateway's route selection to the
``chat-socket`` function and back to devices through ``@connections``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from local_runtime import LocalPlatform
from lwm_core.connections import ConnectionItem, DynamoConnectionStore
from lwm_core.dynamo import bind
from tests.stack import Account, boto, register

pytestmark = pytest.mark.stack

TIMEOUT_S = 10
BURST_TIMEOUT_S = 30


def _cid() -> str:
    return f"c-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def device(local: LocalPlatform, account: Account) -> AsyncIterator[ClientConnection]:
    url = f"{local.endpoints.websocket}/?token={account.access_token}"
    async with websockets.connect(url, max_size=None) as ws:
        yield ws


async def recv(ws: ClientConnection, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), timeout)
    message: dict[str, Any] = json.loads(frame)
    return message


async def recv_type(ws: ClientConnection, kind: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The next frame of type ``kind`` (others, e.g. presence, are skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        message = await recv(ws, max(left, 0.01))
        if message.get("type") == kind:
            return message


async def nothing_more(ws: ClientConnection, kind: str, wait_s: float = 0.5) -> None:
    """No frame of type ``kind`` arrives within ``wait_s``."""
    try:
        while True:
            message = await recv(ws, wait_s)
            assert message.get("type") != kind, message
    except TimeoutError:
        return


async def recv_presence(
    ws: ClientConnection, users: dict[str, str] | None = None, *, reply: bool = False
) -> dict[str, Any]:
    """The next ``presence`` frame: a ``getPresence`` reply (``reply``), or one naming
    ``users`` as given (others, e.g. pushes of who came online, are skipped)."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT_S
    while True:
        left = deadline - asyncio.get_running_loop().time()
        message = await recv_type(ws, "presence", max(left, 0.01))
        if reply and "conversation_id" in message:
            return message
        if not reply and (users is None or message["users"] == users):
            return message


async def send(ws: ClientConnection, **payload: Any) -> None:
    await ws.send(json.dumps(payload))


@pytest.fixture
def people(api: httpx.Client, aws_endpoint: str) -> tuple[Account, Account, str]:
    """A mentee and a mentor with an accepted request: their conversation id."""
    mentee = register(api, aws_endpoint, prefix="sockmentee")
    mentor = register(api, aws_endpoint, roles=("mentor",), prefix="sockmentor")
    sent = api.post(
        "/chat/requests", json={"mentor_id": mentor.id, "text": "Hello!"}, headers=mentee.auth
    )
    assert sent.status_code == 201, sent.text
    accepted = api.post(f"/chat/requests/{sent.json()['id']}/accept", headers=mentor.auth)
    assert accepted.status_code == 200, accepted.text
    return mentee, mentor, accepted.json()["conversation"]["id"]


def _history(api: httpx.Client, who: Account, conversation: str) -> list[dict[str, Any]]:
    """The whole history, oldest first, read with ``after=`` pages of 10."""
    first = api.get(
        f"/conversations/{conversation}/messages", params={"limit": 100}, headers=who.auth
    )
    items: list[dict[str, Any]] = list(reversed(first.json()["items"]))
    return items


async def test_a_message_reaches_every_device_of_every_member_once(
    local: LocalPlatform, people: tuple[Account, Account, str]
) -> None:
    mentee, mentor, conversation = people
    async with (
        device(local, mentee) as phone,
        device(local, mentee) as laptop,
        device(local, mentor) as mentor_ws,
    ):
        # When the mentee sends from her phone
        cid = _cid()
        await send(phone, action="sendMessage", conversation_id=conversation,
                   client_message_id=cid, text="Is <b>Tuesday</b> fine?")  # fmt: skip
        # Then the phone gets the acknowledgement with the stored message
        ack = await recv_type(phone, "message.sent")
        assert ack["client_message_id"] == cid and ack["created"] is True
        stored = ack["message"]
        assert stored["text"] == "Is Tuesday fine?" and stored["author_id"] == mentee.id
        # And her laptop and the mentor each get it once, the same message
        for ws in (laptop, mentor_ws):
            new = await recv_type(ws, "message.new")
            assert new["message"] == stored
        # And the phone is not told twice
        await nothing_more(phone, "message.new")
        # When the mentor reads it, both sides see the read receipt
        await send(mentor_ws, action="markRead", conversation_id=conversation,
                   message_id=stored["id"])  # fmt: skip
        for ws in (phone, laptop, mentor_ws):
            receipt = await recv_type(ws, "receipt")
            assert receipt == {
                "type": "receipt",
                "conversation_id": conversation,
                "user_id": mentor.id,
                "kind": "read",
                "message_id": stored["id"],
            }


async def test_a_resend_with_the_same_client_id_is_stored_and_delivered_once(
    api: httpx.Client, local: LocalPlatform, people: tuple[Account, Account, str]
) -> None:
    mentee, mentor, conversation = people
    async with device(local, mentee) as phone, device(local, mentor) as mentor_ws:
        cid = _cid()
        message = {"conversation_id": conversation, "client_message_id": cid, "text": "once"}
        await send(phone, action="sendMessage", **message)
        first = await recv_type(phone, "message.sent")
        # When the client resends (it never saw the ack, say)
        await send(phone, action="sendMessage", **message)
        again = await recv_type(phone, "message.sent")
        # Then the resend is answered with the stored message, and not stored again
        assert again["created"] is False and again["message"]["id"] == first["message"]["id"]
        assert (await recv_type(mentor_ws, "message.new"))["message"]["id"] == first["message"][
            "id"
        ]
        await nothing_more(mentor_ws, "message.new")
    texts = [m["text"] for m in _history(api, mentor, conversation)]
    assert texts.count("once") == 1


async def test_concurrent_sends_are_ordered_the_same_for_everyone(
    api: httpx.Client, local: LocalPlatform, people: tuple[Account, Account, str]
) -> None:
    mentee, mentor, conversation = people
    per_sender = 8
    async with device(local, mentee) as a, device(local, mentor) as b:
        # When both send at once, without waiting for acknowledgements
        async def burst(ws: ClientConnection, who: str) -> None:
            for i in range(per_sender):
                await send(ws, action="sendMessage", conversation_id=conversation,
                           client_message_id=_cid(), text=f"{who}-{i}")  # fmt: skip

        await asyncio.gather(burst(a, "a"), burst(b, "b"))

        async def collect(ws: ClientConnection) -> dict[str, str]:
            seen: dict[str, str] = {}
            while len(seen) < 2 * per_sender:
                # a burst may start two more chat-socket sandboxes (cold) on a loaded machine
                frame = await recv(ws, BURST_TIMEOUT_S)
                assert frame["type"] != "error", frame  # a refused send says why
                if frame["type"] in ("message.new", "message.sent"):
                    assert frame["message"]["id"] not in seen, "delivered twice"
                    seen[frame["message"]["id"]] = frame["message"]["text"]
            return seen

        seen_a, seen_b = await asyncio.gather(collect(a), collect(b))
    # Then each side saw every message once, and sorting by id gives one order for all:
    # the order of the history
    history = [m for m in _history(api, mentee, conversation) if m["text"] != "Hello!"]
    ids = [m["id"] for m in history]
    assert ids == sorted(ids) and len(ids) == 2 * per_sender
    assert sorted(seen_a) == sorted(seen_b) == ids
    # And each sender's own messages keep the order they were sent in
    for who in ("a", "b"):
        mine = [m["text"] for m in history if m["text"].startswith(f"{who}-")]
        assert sorted(mine, key=lambda t: int(t.split("-")[1])) == sorted(mine)


async def test_a_reconnecting_client_catches_up_with_nothing_lost(
    api: httpx.Client, local: LocalPlatform, people: tuple[Account, Account, str]
) -> None:
    mentee, mentor, conversation = people
    async with device(local, mentor) as mentor_ws, device(local, mentee) as phone:
        await send(phone, action="sendMessage", conversation_id=conversation,
                   client_message_id=_cid(), text="before")  # fmt: skip
        last_seen = (await recv_type(mentor_ws, "message.new"))["message"]["id"]
    # While the mentor is away, the mentee sends over REST and the socket
    for i in range(12):
        posted = api.post(
            f"/conversations/{conversation}/messages",
            json={"text": f"while away {i}", "client_message_id": _cid()},
            headers=mentee.auth,
        )
        assert posted.status_code == 201, posted.text
    # When the mentor reconnects and pages with after= until nothing is left
    async with device(local, mentor) as mentor_ws:
        caught: list[str] = []
        cursor = last_seen
        while True:
            page = api.get(
                f"/conversations/{conversation}/messages",
                params={"after": cursor, "limit": 5},
                headers=mentor.auth,
            ).json()
            caught += [m["text"] for m in page["items"]]
            cursor = page["next_cursor"]
            if not page["has_more"]:
                break
        # Then every message is there once, in order, and the socket is live again
        assert caught == [f"while away {i}" for i in range(12)]
        async with device(local, mentee) as phone:
            await send(phone, action="sendMessage", conversation_id=conversation,
                       client_message_id=_cid(), text="welcome back")  # fmt: skip
            assert (await recv_type(mentor_ws, "message.new"))["message"]["text"] == "welcome back"


async def test_a_stale_connection_is_forgotten_when_it_answers_gone(
    local: LocalPlatform, people: tuple[Account, Account, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mentee, mentor, conversation = people
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bind(
        ConnectionItem,
        local.endpoints.resources.tables["connections"],
        local.endpoints.region,
        local.endpoints.aws,
    )
    store = DynamoConnectionStore()
    # Given a connection record whose $disconnect never ran
    store.add("stale-connection-id", mentor.id)
    async with device(local, mentor) as mentor_ws, device(local, mentee) as phone:
        await send(phone, action="sendMessage", conversation_id=conversation,
                   client_message_id=_cid(), text="anyone?")  # fmt: skip
        # Then the live device still gets it, and the stale one is gone from the records
        assert (await recv_type(mentor_ws, "message.new"))["message"]["text"] == "anyone?"
        await recv_type(phone, "message.sent")
        for _ in range(50):  # the live post may land before the stale one is answered
            ids = {c.connection_id for c in store.of_user(mentor.id)}
            if "stale-connection-id" not in ids:
                break
            await asyncio.sleep(0.1)
        assert "stale-connection-id" not in ids and len(ids) == 1


async def test_outsiders_and_bad_payloads_are_answered_with_errors(
    api: httpx.Client,
    aws_endpoint: str,
    local: LocalPlatform,
    people: tuple[Account, Account, str],
) -> None:
    _, _, conversation = people
    outsider = register(api, aws_endpoint, prefix="sockoutsider")
    async with device(local, outsider) as ws:
        # A non-member can neither write, read receipts, type nor watch presence
        cid = _cid()
        for action, extra in (
            ("sendMessage", {"client_message_id": cid, "text": "let me in"}),
            ("markRead", {"message_id": "01J00000000000000000000000"}),
            ("typing", {"state": "start"}),
            ("getPresence", {}),
        ):
            await send(ws, action=action, conversation_id=conversation, **extra)
            error = await recv_type(ws, "error")
            assert error["code"] == "conversation_not_found" and error["action"] == action
        # Bad payloads name the field; the socket stays open
        await send(ws, action="sendMessage", conversation_id=conversation, text="no id")
        error = await recv_type(ws, "error")
        assert error["code"] == "invalid_payload"
        assert ["client_message_id"] in [e["loc"] for e in error["errors"]]
        await send(ws, action="typing", conversation_id=conversation, state="dancing")
        assert (await recv_type(ws, "error"))["code"] == "invalid_payload"
        await ws.send("{not json")
        assert (await recv_type(ws, "error"))["code"] == "malformed_json"
        await send(ws, action="teleport")
        error = await recv_type(ws, "error")
        assert error["code"] == "unknown_action" and error["action"] == "teleport"
        await send(ws, action="ping")
        assert (await recv(ws))["type"] == "pong"


async def test_an_oversized_frame_is_refused_with_a_clear_close(
    local: LocalPlatform, people: tuple[Account, Account, str]
) -> None:
    mentee, _, conversation = people
    async with device(local, mentee) as ws:
        # Text over the chat limit (but within a frame) is an error, the socket stays open
        await send(ws, action="sendMessage", conversation_id=conversation,
                   client_message_id=_cid(), text="x" * 5000)  # fmt: skip
        assert (await recv_type(ws, "error"))["code"] == "invalid_payload"
        # A frame over API Gateway's 32 KB closes the socket with 1009 and a reason
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await send(ws, action="sendMessage", conversation_id=conversation,
                       client_message_id=_cid(), text="y" * 40_000)  # fmt: skip
            await recv(ws)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        assert closed.value.rcvd.reason


async def test_typing_and_presence_reach_the_other_member_and_are_not_stored(
    api: httpx.Client, local: LocalPlatform, people: tuple[Account, Account, str]
) -> None:
    mentee, mentor, conversation = people
    async with device(local, mentee) as phone, device(local, mentor) as mentor_ws:
        # Typing reaches the mentor, not the typist
        await send(phone, action="typing", conversation_id=conversation, state="start")
        typing = await recv_type(mentor_ws, "typing")
        assert typing == {
            "type": "typing",
            "conversation_id": conversation,
            "user_id": mentee.id,
            "state": "start",
        }
        await nothing_more(phone, "typing")
        # Presence: both online; the mentor steps away and the mentee is told
        await send(phone, action="getPresence", conversation_id=conversation)
        presence = await recv_presence(phone, reply=True)
        assert presence["users"] == {mentee.id: "online", mentor.id: "online"}
        await send(mentor_ws, action="setPresence", status="away")
        await recv_presence(mentor_ws, {mentor.id: "away"})  # the answer
        await recv_presence(phone, {mentor.id: "away"})  # the push
    # Neither is a message
    assert [m["text"] for m in _history(api, mentee, conversation)] == ["Hello!"]
    # And once the sockets closed, both are offline
    async with device(local, mentee) as phone:
        await send(phone, action="getPresence", conversation_id=conversation)
        assert (await recv_presence(phone, reply=True))["users"][mentor.id] == "offline"


async def test_contacts_are_told_when_a_user_comes_online_and_goes_offline(
    local: LocalPlatform, people: tuple[Account, Account, str]
) -> None:
    mentee, mentor, _ = people
    async with device(local, mentee) as phone:
        # The mentor's first device connects: the mentee is told, unasked
        async with device(local, mentor) as laptop:
            await recv_presence(phone, {mentor.id: "online"})
            # a second device is no news; closing it is none either
            async with device(local, mentor):
                pass
            await send(laptop, action="ping")  # (the mentee's own "online" may come first)
            await recv_type(laptop, "pong")
        # The last device is gone: the mentee is told the mentor is offline
        await recv_presence(phone, {mentor.id: "offline"})
        await nothing_more(phone, "presence")


async def test_every_change_reaches_the_bus_and_offline_members_are_handed_to_notifications(
    api: httpx.Client, local: LocalPlatform, people: tuple[Account, Account, str]
) -> None:
    mentee, mentor, conversation = people
    events, sqs = boto(local, "events"), boto(local, "sqs")
    bus = local.endpoints.resources.event_bus
    # Given a queue subscribed to chat's events about this conversation
    queue = sqs.create_queue(QueueName=f"chat-events-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]
    rule = f"chat-test-{uuid.uuid4().hex[:8]}"
    pattern = {"source": ["lwm.chat"], "detail": {"conversation_id": [conversation]}}
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=bus, Targets=[{"Id": "q", "Arn": arn["QueueArn"]}])
    # When the mentee sends while the mentor has no device connected
    async with device(local, mentee) as phone:
        await send(phone, action="sendMessage", conversation_id=conversation,
                   client_message_id=_cid(), text="are you there?")  # fmt: skip
        sent = (await recv_type(phone, "message.sent"))["message"]
    # Then the bus gets message.posted and, for the mentor, message.undelivered
    seen: dict[str, dict[str, Any]] = {}
    deadline = asyncio.get_running_loop().time() + 20
    while len(seen) < 2 and asyncio.get_running_loop().time() < deadline:
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in got.get("Messages", []):
            body = json.loads(m["Body"])
            if body["detail"].get("message_id") == sent["id"]:
                seen[body["detail-type"]] = body["detail"]
    assert set(seen) == {"message.posted", "message.undelivered"}, seen
    assert seen["message.undelivered"]["recipient_ids"] == [mentor.id]
    assert seen["message.undelivered"]["preview"] == "are you there?"
    assert seen["message.posted"]["event_id"] != seen["message.undelivered"]["event_id"]
