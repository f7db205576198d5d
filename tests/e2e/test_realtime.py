"""The real-time channel end to end: real tokens, the local WebSocket API, the real handlers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from local_runtime import LocalPlatform
from lwm_core.connections import ConnectionItem, DynamoConnectionStore
from lwm_core.dynamo import bind
from lwm_core.push import Pusher
from tests.stack import Account, boto, register

pytestmark = pytest.mark.stack


@pytest.fixture
def account(api: httpx.Client, aws_endpoint: str) -> Account:
    return register(api, aws_endpoint, prefix="realtime")


def _ws_url(local: LocalPlatform, token: str | None = None) -> str:
    base = local.endpoints.websocket
    return f"{base}/?token={token}" if token else base


async def _recv(ws: Any) -> dict[str, Any]:
    frame = await asyncio.wait_for(ws.recv(), 10)
    message: dict[str, Any] = json.loads(frame)
    return message


def _pusher(local: LocalPlatform) -> tuple[Pusher, DynamoConnectionStore]:
    table = local.endpoints.resources.tables["connections"]
    bind(ConnectionItem, table, local.endpoints.region, local.endpoints.aws)
    management = boto3_management(local)
    store = DynamoConnectionStore()
    return Pusher(management, store), store


def boto3_management(local: LocalPlatform) -> Any:
    import boto3

    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=local.endpoints.websocket.replace("ws://", "http://"),
        region_name=local.endpoints.region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


async def test_ping_is_answered_over_a_token_authorized_socket(
    local: LocalPlatform, account: Account
) -> None:
    async with websockets.connect(_ws_url(local, account.access_token)) as ws:
        await ws.send(json.dumps({"action": "ping", "echo": 42}))
        pong = await _recv(ws)
    assert pong["type"] == "pong" and pong["echo"] == 42


async def test_browsers_connect_with_the_bearer_subprotocol(
    local: LocalPlatform, account: Account
) -> None:
    async with websockets.connect(
        _ws_url(local),
        subprotocols=["bearer", account.access_token],  # type: ignore[list-item]
    ) as ws:
        assert ws.subprotocol == "bearer"
        await ws.send('{"action": "ping"}')
        assert (await _recv(ws))["type"] == "pong"


async def test_a_bad_token_fails_the_handshake_with_401(local: LocalPlatform) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        async with websockets.connect(_ws_url(local, "not.a.token")):
            pass
    assert refused.value.response.status_code == 401
    with pytest.raises(websockets.InvalidStatus) as missing:
        async with websockets.connect(_ws_url(local)):
            pass
    assert missing.value.response.status_code == 401


async def test_bad_messages_are_answered_and_the_socket_stays_open(
    local: LocalPlatform, account: Account
) -> None:
    async with websockets.connect(_ws_url(local, account.access_token)) as ws:
        await ws.send("{not json")
        assert (await _recv(ws))["code"] == "malformed_json"
        await ws.send(json.dumps({"action": "teleport"}))
        unknown = await _recv(ws)
        assert (unknown["code"], unknown["action"]) == ("unknown_action", "teleport")
        await ws.send(json.dumps({"no": "action"}))
        assert (await _recv(ws))["code"] == "invalid_message"
        await ws.send('{"action": "ping"}')
        assert (await _recv(ws))["type"] == "pong"


async def test_a_push_reaches_every_device_and_forgets_closed_ones(
    local: LocalPlatform, account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the user on two devices (and this process talking to the local AWS endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    pusher, store = _pusher(local)
    url = _ws_url(local, account.access_token)
    async with websockets.connect(url) as phone, websockets.connect(url) as laptop:
        # (each device is recorded once its $connect has run)
        await phone.send('{"action": "ping"}')
        await laptop.send('{"action": "ping"}')
        await _recv(phone)
        await _recv(laptop)
        assert len(list(store.of_user(account.id))) == 2
        # When something is pushed to the user
        result = await asyncio.to_thread(pusher.to_user, account.id, {"type": "hello"})
        # Then both devices get it
        assert len(result.delivered) == 2 and not result.unreachable
        assert (await _recv(phone))["type"] == "hello"
        assert (await _recv(laptop))["type"] == "hello"
    # When both have closed, and a stale record (a lost $disconnect) is left behind
    for _ in range(100):  # $disconnect runs after the close
        if not store.of_user(account.id):
            break
        await asyncio.sleep(0.1)
    assert list(store.of_user(account.id)) == []
    store.add("c3RhbGVjb25uZWN0aW9u=", account.id)
    after = await asyncio.to_thread(pusher.to_user, account.id, {"type": "late"})
    # Then the stale connection answers Gone and is forgotten; the user is unreachable
    assert after.gone == ["c3RhbGVjb25uZWN0aW9u="]
    assert after.unreachable == {account.id}
    assert list(store.of_user(account.id)) == []
    # And the table the records lived in is the declared one
    table = local.endpoints.resources.tables["connections"]
    assert boto(local, "dynamodb").describe_table(TableName=table)["Table"]["TableName"] == table
