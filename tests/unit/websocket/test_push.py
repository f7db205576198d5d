"""Pushing to users: every device, concurrently; gone connections are forgotten."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from lwm_core.connections import Connection
from lwm_core.push import Pusher


class InMemoryConnections:
    def __init__(self, by_user: dict[str, list[str]]) -> None:
        self.by_user = {u: list(ids) for u, ids in by_user.items()}

    def of_users(self, user_ids: Iterable[str]) -> Iterable[Connection]:
        return [Connection(c, u, 0) for u in user_ids for c in self.by_user.get(u, [])]

    def remove(self, connection_id: str, user_id: str | None = None) -> None:
        for ids in self.by_user.values():
            if connection_id in ids:
                ids.remove(connection_id)


class FakeManagementApi:
    """Answers like @connections: GoneException for closed ids; records what it got."""

    def __init__(self, gone: set[str], delay_s: float = 0.0) -> None:
        self.gone = gone
        self.delay_s = delay_s
        self.received: dict[str, bytes] = {}
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> dict[str, Any]:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.delay_s)
            if ConnectionId in self.gone:
                raise ClientError(
                    {"Error": {"Code": "GoneException", "Message": ""}}, "PostToConnection"
                )
            self.received[ConnectionId] = Data
            return {}
        finally:
            with self._lock:
                self.in_flight -= 1


def test_a_push_reaches_every_device_and_names_who_was_unreachable() -> None:
    # Given Ada on two devices (one of them gone), Ben on one, Cy on none
    connections = InMemoryConnections({"ada": ["a1", "a2"], "ben": ["b1"], "cy": []})
    api = FakeManagementApi(gone={"a2"})
    # When a message is pushed to all three
    result = Pusher(api, connections).to_users(["ada", "ben", "cy"], {"type": "message", "n": 1})
    # Then the open devices got it, the gone one is forgotten, Cy is unreachable
    assert sorted(result.delivered) == ["a1", "b1"]
    assert result.gone == ["a2"] and connections.by_user["ada"] == ["a1"]
    assert result.unreachable == {"cy"}
    assert json.loads(api.received["a1"]) == {"type": "message", "n": 1}
    assert result.posts == 3


def test_a_user_whose_only_device_is_gone_is_unreachable() -> None:
    connections = InMemoryConnections({"ada": ["a1"]})
    result = Pusher(FakeManagementApi(gone={"a1"}), connections).to_user("ada", "hi")
    assert result.unreachable == {"ada"} and result.delivered == []


def test_the_senders_own_connection_can_be_left_out() -> None:
    connections = InMemoryConnections({"ada": ["a1", "a2"]})
    api = FakeManagementApi(gone=set())
    result = Pusher(api, connections).to_users(["ada"], b"x", exclude=["a1"])
    assert result.delivered == ["a2"] and "a1" not in api.received


def test_posts_are_made_concurrently() -> None:
    # Given 20 connections whose posts each take 50 ms
    connections = InMemoryConnections({f"u{n}": [f"c{n}"] for n in range(20)})
    api = FakeManagementApi(gone=set(), delay_s=0.05)
    # When they are pushed to
    started = time.perf_counter()
    result = Pusher(api, connections).to_users(list(connections.by_user), {"k": "v"})
    elapsed = time.perf_counter() - started
    # Then many were in flight at once (one after another would take a second)
    assert len(result.delivered) == 20
    assert api.max_in_flight >= 10
    assert elapsed < 0.5


class CountingConnections(InMemoryConnections):
    def __init__(self, by_user: dict[str, list[str]]) -> None:
        super().__init__(by_user)
        self.reads = 0

    def of_users(self, user_ids: Iterable[str]) -> Iterable[Connection]:
        self.reads += 1
        return super().of_users(user_ids)


def test_connections_read_ahead_are_used_by_the_push() -> None:
    # Given the audience's connections read while the message was committing
    connections = CountingConnections({"ada": ["a1"], "ben": ["b1"], "cy": ["c1"]})
    api = FakeManagementApi(gone=set())
    pusher = Pusher(api, connections)
    ahead = pusher.look_up(["ada", "ben", "cy"])
    # When the push goes to part of them
    result = pusher.to_users(["ada", "ben"], {"k": 1}, known=ahead)
    # Then no second read was made, and only the push's users got it
    assert connections.reads == 1
    assert sorted(result.delivered) == ["a1", "b1"] and "c1" not in api.received


def test_a_failed_read_ahead_is_read_again() -> None:
    from concurrent.futures import Future

    connections = CountingConnections({"ada": ["a1"]})
    failed: Future[list[Connection]] = Future()
    failed.set_exception(OSError("the connections table did not answer"))
    result = Pusher(FakeManagementApi(gone=set()), connections).to_users(
        ["ada"], {"k": 1}, known=failed
    )
    assert result.delivered == ["a1"] and connections.reads == 1
