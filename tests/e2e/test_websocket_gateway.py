"""The local WebSocket API through real clients: handshake, routes, ``@connections``, limits.

A small platform of its own (``tests/e2e/ws_handlers``), so that these tests
prove the gateway, not the platform's real-time handlers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from blueprint.model import (
    WS_CONNECT,
    WS_DEFAULT,
    WS_DISCONNECT,
    Access,
    Function,
    KeyAttr,
    Platform,
    Table,
    WebSocketApi,
    WebSocketRoute,
)
from local_runtime import LocalPlatform
from local_runtime.config import Ports

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("ws-gateway")]

TABLE = Table("ws-test-connections", KeyAttr("connection_id"))


def _fn(name: str, module: str, *access: Access) -> Function:
    return Function(
        name=name,
        handler=f"ws_handlers.{module}.handler",
        description=f"WebSocket test {module}",
        memory_mb=128,
        timeout_s=5,
        access=access,
        local_workers=2,
    )


AUTHORIZER = _fn("ws-test-authorizer", "authorizer")
CONNECTIONS = _fn("ws-test-connections", "connections", Access.table(TABLE.name))
ECHO = _fn("ws-test-echo", "echo", Access.websocket())
WS_TEST_PLATFORM = Platform(
    services=(),
    tables=(TABLE,),
    workers=(AUTHORIZER, CONNECTIONS, ECHO),
    websocket=WebSocketApi(
        name="ws-test",
        authorizer=AUTHORIZER.name,
        connections_table=TABLE.name,
        routes=(
            WebSocketRoute(WS_CONNECT, CONNECTIONS.name),
            WebSocketRoute(WS_DISCONNECT, CONNECTIONS.name),
            WebSocketRoute(WS_DEFAULT, ECHO.name),
            WebSocketRoute("echo", ECHO.name),
            WebSocketRoute("fail", ECHO.name),
        ),
    ),
)


@pytest.fixture(scope="module")
def local() -> Iterator[LocalPlatform]:
    platform = LocalPlatform(
        platform=WS_TEST_PLATFORM,
        ports=Ports.ephemeral(),
        postgres=False,
        python_path=[Path(__file__).parent],
        ws_idle_timeout_s=30,
    )
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()


@pytest.fixture(scope="module")
def ws_url(local: LocalPlatform) -> str:
    assert local.endpoints.websocket is not None
    return local.endpoints.websocket


@pytest.fixture(scope="module")
def management(ws_url: str) -> Any:
    """boto3's @connections client, pointed at the local WebSocket API as handlers point it."""
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=ws_url.replace("ws://", "http://"),
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def table(local: LocalPlatform) -> Any:
    name = local.endpoints.resources.tables[TABLE.name]
    return boto3.resource(
        "dynamodb",
        endpoint_url=local.endpoints.aws,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ).Table(name)


def _open(ws_url: str, query: str = "token=good", **kwargs: Any) -> ClientConnection:
    return connect(f"{ws_url}/?{query}", open_timeout=20, **kwargs)


def _ask(ws: ClientConnection, message: str) -> dict[str, Any]:
    ws.send(message)
    return json.loads(ws.recv(timeout=20))


def _closed(ws: ClientConnection, timeout: float = 10) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            ws.recv(timeout=timeout)
    return closed.value


def _record(table: Any, connection_id: str, key: str = "disconnect_code") -> dict[str, Any]:
    """The connections item once ``key`` is set (``$disconnect`` runs after the close)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        item = table.get_item(Key={"connection_id": connection_id}).get("Item")
        if item and key in item:
            return dict(item)
        time.sleep(0.1)
    raise AssertionError(f"{connection_id}: no {key}")


def _connection_id(ws: ClientConnection) -> str:
    return str(_ask(ws, "{}")["connectionId"])


def test_endpoints_name_the_websocket_api(local: LocalPlatform, ws_url: str) -> None:
    assert ws_url.startswith("ws://127.0.0.1:")
    assert local.endpoints.as_json()["websocket"] == ws_url


def test_allowed_connection_routes_on_action(ws_url: str) -> None:
    # Given a connection the authorizer allowed
    with _open(ws_url) as ws:
        # When messages name a declared action, an undeclared one, or are not JSON
        named = _ask(ws, json.dumps({"action": "echo", "n": 1}))
        unknown = _ask(ws, json.dumps({"action": "nope"}))
        malformed = _ask(ws, "not json {")
    # Then the named route, else $default, received them with the authorizer's context
    assert (named["route"], named["eventType"]) == ("echo", "MESSAGE")
    assert json.loads(named["body"]) == {"action": "echo", "n": 1}
    assert unknown["route"] == "$default"
    assert (malformed["route"], malformed["body"]) == ("$default", "not json {")
    authorizer = named["authorizer"]
    assert authorizer.pop("integrationLatency") >= 0
    assert authorizer == {
        "principalId": "user-1",
        "userId": "user-1",
        "admin": "false",
        "level": "7",
    }
    connection_id = named["connectionId"]
    assert len(connection_id) == 16 and connection_id.endswith("=")


@pytest.mark.parametrize(("query", "status"), [("", 401), ("token=bad", 401), ("token=deny", 401)])
def test_refused_handshake(ws_url: str, query: str, status: int) -> None:
    # Given no token, a wrong one, or one the authorizer denies; When connecting
    with pytest.raises(InvalidStatus) as refused:
        _open(ws_url, query)
    # Then the handshake fails with 401, as API Gateway's does
    assert refused.value.response.status_code == status
    assert json.loads(refused.value.response.body) == {"message": "Unauthorized"}


def test_connect_function_can_refuse(ws_url: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _open(ws_url, "token=good&reject=1")
    assert refused.value.response.status_code == 403


def test_token_in_subprotocol_and_accepted_subprotocol(ws_url: str, table: Any) -> None:
    # Given the token sent as a subprotocol (browsers cannot set headers)
    with connect(ws_url, subprotocols=["lwm.v1", "good"], open_timeout=20) as ws:  # type: ignore[list-item]
        # Then the connection opens with the subprotocol $connect chose
        assert ws.subprotocol == "lwm.v1"
        connection_id = _connection_id(ws)
    assert _record(table, connection_id, "principal")["principal"] == "user-1"


def test_get_and_delete_connection(ws_url: str, management: Any, table: Any) -> None:
    with _open(ws_url, additional_headers={"User-Agent": "lwm-test"}) as ws:
        connection_id = _connection_id(ws)
        # When the connection is read through @connections
        info = management.get_connection(ConnectionId=connection_id)
        assert info["Identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "lwm-test"}
        assert info["LastActiveAt"] >= info["ConnectedAt"]
        # And deleted
        management.delete_connection(ConnectionId=connection_id)
        # Then the socket closes and $disconnect runs
        assert _closed(ws).rcvd is not None
    assert _record(table, connection_id)["disconnect_code"] == 1000
    # And the connection is gone for every @connections call
    gone = management.exceptions.GoneException
    with pytest.raises(gone):
        management.post_to_connection(ConnectionId=connection_id, Data=b"late")
    with pytest.raises(gone):
        management.get_connection(ConnectionId=connection_id)
    with pytest.raises(gone):
        management.delete_connection(ConnectionId=connection_id)


def test_client_close_runs_disconnect_with_code_and_reason(ws_url: str, table: Any) -> None:
    with _open(ws_url) as ws:
        connection_id = _connection_id(ws)
        ws.close(4001, "bye")
    record = _record(table, connection_id)
    assert (record["disconnect_code"], record["disconnect_reason"]) == (4001, "bye")


def test_post_to_unknown_or_oversized(ws_url: str, management: Any) -> None:
    with pytest.raises(management.exceptions.GoneException):
        management.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
    with _open(ws_url) as ws:
        connection_id = _connection_id(ws)
        with pytest.raises(management.exceptions.PayloadTooLargeException):
            management.post_to_connection(ConnectionId=connection_id, Data=b"x" * (128 * 1024 + 1))
        management.post_to_connection(ConnectionId=connection_id, Data=b"hello")
        assert ws.recv(timeout=10) == "hello"


def test_failed_integration_answers_internal_server_error(ws_url: str) -> None:
    with _open(ws_url) as ws:
        reply = _ask(ws, json.dumps({"action": "fail"}))
    assert reply["message"] == "Internal server error"
    assert {"connectionId", "requestId"} <= reply.keys()


def test_fragmented_message_within_limits_is_delivered(ws_url: str) -> None:
    with _open(ws_url) as ws:
        body = json.dumps({"action": "echo", "pad": "x" * 90_000})
        parts = [body[i : i + 30_000] for i in range(0, len(body), 30_000)]
        ws.send(iter(parts))
        assert json.loads(ws.recv(timeout=20))["body"] == body


@pytest.mark.parametrize(
    ("message", "code"),
    [
        pytest.param("x" * (32 * 1024 + 1), 1009, id="frame-over-32KB"),
        pytest.param(["y" * 30_000] * 5, 1009, id="message-over-128KB"),
        pytest.param(b"\x00\x01", 1003, id="binary-frame"),
    ],
)
def test_oversized_or_binary_input_closes(ws_url: str, table: Any, message: Any, code: int) -> None:
    with _open(ws_url) as ws:
        connection_id = _connection_id(ws)
        try:
            ws.send(iter(message) if isinstance(message, list) else message)
        except ConnectionClosed as early:  # closed before the last fragment went out
            closed = early
        else:
            closed = _closed(ws)
    assert closed.rcvd is not None and closed.rcvd.code == code
    if code == 1009:
        assert closed.rcvd.reason == "Message too big"
    assert _record(table, connection_id)["disconnect_code"] == code


@pytest.mark.parametrize("limit", ["idle_timeout_s", "max_duration_s"])
def test_idle_and_long_connections_are_closed(
    local: LocalPlatform, ws_url: str, table: Any, limit: str
) -> None:
    gateway = local.websocket_gateway
    saved = getattr(gateway, limit)
    setattr(gateway, limit, 1.5)
    try:
        with _open(ws_url) as ws:
            connection_id = _connection_id(ws)
            started = time.monotonic()
            if limit == "max_duration_s":  # activity does not extend the maximum duration
                ws.send('{"action": "echo"}')
            closed = _closed(ws, timeout=10)
            elapsed = time.monotonic() - started
    finally:
        setattr(gateway, limit, saved)
    assert closed.rcvd is not None and (closed.rcvd.code, closed.rcvd.reason) == (
        1001,
        "Going away",
    )
    assert elapsed < 3
    assert _record(table, connection_id)["disconnect_code"] == 1001
