"""Domain events onto the platform's EventBridge bus (moderation, notifications, analytics).

A service publishes the events its logic returned, after the commit that made
them true. Each event becomes one entry: ``Source`` names the service
(``lwm.chat``), ``DetailType`` the event (``MessagePosted``) and ``Detail`` its
fields as JSON (times in ISO 8601 UTC). Entries go in batches of 10, the
``PutEvents`` limit; an entry EventBridge refuses raises, so the caller's
retry (or its queue's redrive) publishes again.
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


def entry(source: str, bus: str, event: Any) -> dict[str, str]:
    """The ``PutEvents`` entry of one dataclass event."""
    is_instance = dataclasses.is_dataclass(event) and not isinstance(event, type)
    detail = dataclasses.asdict(event) if is_instance else dict(event)
    return {
        "Source": source,
        "DetailType": type(event).__name__,
        "Detail": json.dumps(detail, default=_jsonable, separators=(",", ":")),
        "EventBusName": bus,
    }


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
            answer = self.client.put_events(Entries=batch)
            if answer.get("FailedEntryCount"):
                failed = [e for e in answer.get("Entries", []) if e.get("ErrorCode")]
                raise PublishError(f"EventBridge refused {len(failed)} of {len(batch)}: {failed}")
        return len(entries)
