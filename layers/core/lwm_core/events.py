"""Domain events onto the platform's EventBridge bus (moderation, notifications, analytics).

Services write their events to an outbox with the change itself and relay
them from the table's stream (``lwm_core.outbox``). Each event becomes one
entry: ``Source`` names the service (``lwm.chat``), ``DetailType`` the event
(``message.posted``) and ``Detail`` its fields as JSON (times in ISO 8601
UTC). Entries go in batches of 10, the ``PutEvents`` limit.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from datetime import datetime
from enum import Enum
from typing import Any

PUT_EVENTS_LIMIT = 10


class PublishError(RuntimeError):
    """EventBridge refused some entries."""


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def serialize(event: Any, *, event_id: str | None = None) -> tuple[str, str]:
    """``(DetailType, Detail)`` of one dataclass event and its fields as JSON.

    The DetailType is the event class's ``detail_type`` (e.g. ``message.posted``),
    else its name. Class variables are not fields, so they stay out of the Detail.

    ``event_id``, when given, is added to the fields (consumers drop repeats by it).
    """
    is_instance = dataclasses.is_dataclass(event) and not isinstance(event, type)
    detail = dataclasses.asdict(event) if is_instance else dict(event)
    if event_id is not None:
        detail["event_id"] = event_id
    detail_type = str(getattr(type(event), "detail_type", type(event).__name__))
    return detail_type, json.dumps(detail, default=_jsonable, separators=(",", ":"))


def entry(source: str, bus: str, event: Any) -> dict[str, str]:
    """The ``PutEvents`` entry of one dataclass event."""
    detail_type, detail = serialize(event)
    return {"Source": source, "DetailType": detail_type, "Detail": detail, "EventBusName": bus}


class EventPublisher:
    """Publishes a service's domain events to one bus.

    Args:
        source: the service's event source, e.g. ``lwm.chat``.
        bus: the bus name (``LWM_EVENT_BUS``).
        client: a boto3 ``events`` client (default: the sandbox's).
    """

    def __init__(self, source: str, bus: str, client: Any | None = None) -> None:
        self.source = source
        self.bus = bus
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            from lwm_core.aws import client

            self._client = client("events")
        return self._client

    def publish(self, events: Iterable[Any]) -> int:
        """Publish ``events``; returns how many went out."""
        entries = [entry(self.source, self.bus, e) for e in events]
        for start in range(0, len(entries), PUT_EVENTS_LIMIT):
            batch = entries[start : start + PUT_EVENTS_LIMIT]
            if failed := self.put_entries(batch):
                raise PublishError(f"EventBridge refused {len(failed)} of {len(batch)} entries")
        return len(entries)

    def put_entries(self, batch: list[dict[str, str]]) -> list[int]:
        """One ``PutEvents`` call (at most 10 entries); the indexes of refused entries.

        A call that fails as a whole refuses every entry.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self.client.put_events(Entries=batch)
        except (BotoCoreError, ClientError):
            return list(range(len(batch)))
        if not answer.get("FailedEntryCount"):
            return []
        return [i for i, e in enumerate(answer.get("Entries", [])) if e.get("ErrorCode")]
