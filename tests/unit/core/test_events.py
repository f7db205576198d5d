"""Domain events reach the bus as EventBridge entries, in batches of ten."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lwm_core.events import EventPublisher, PublishError, entry


class Kind(StrEnum):
    GROUP = "group"


@dataclass(frozen=True)
class Happened:
    conversation_id: str
    kind: Kind
    at: datetime
    members: tuple[str, ...]


def test_an_entry_names_the_service_and_the_event_and_carries_json() -> None:
    event = Happened("c1", Kind.GROUP, datetime(2030, 1, 1, tzinfo=UTC), ("a", "b"))
    made = entry("lwm.chat", "bus", event)
    assert (made["Source"], made["DetailType"], made["EventBusName"]) == (
        "lwm.chat",
        "Happened",
        "bus",
    )
    assert json.loads(made["Detail"]) == {
        "conversation_id": "c1",
        "kind": "group",
        "at": "2030-01-01T00:00:00+00:00",
        "members": ["a", "b"],
    }


class RecordingEvents:
    """An EventBridge client that records batches and can refuse entries."""

    def __init__(self, refuse: bool = False) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.refuse = refuse

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.batches.append(Entries)
        if self.refuse:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure"}]}
        return {"FailedEntryCount": 0, "Entries": [{"EventId": "x"} for _ in Entries]}


def test_events_go_in_batches_of_ten() -> None:
    client = RecordingEvents()
    events = [Happened(f"c{n}", Kind.GROUP, datetime.now(UTC), ()) for n in range(23)]
    assert EventPublisher("lwm.chat", "bus", client).publish(events) == 23
    assert [len(b) for b in client.batches] == [10, 10, 3]


def test_a_refused_entry_raises_so_the_caller_retries() -> None:
    with pytest.raises(PublishError):
        EventPublisher("lwm.chat", "bus", RecordingEvents(refuse=True)).publish(
            [Happened("c", Kind.GROUP, datetime.now(UTC), ())]
        )


@mock_aws
def test_publishing_to_a_real_bus_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    events = boto3.client("events", region_name="us-east-1")
    events.create_event_bus(Name="lwm-test")
    publisher = EventPublisher("lwm.chat", "lwm-test", events)
    assert publisher.publish([Happened("c", Kind.GROUP, datetime.now(UTC), ("a",))]) == 1
