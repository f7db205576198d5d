"""The transactional outbox: domain events committed with the state they describe.

A service writes each event as an item of its own table in the same
``TransactWriteItems`` as the change (``pk = OUTBOX#<event id>``), so an event
exists exactly when its change does. The table's stream carries the new items
to a small relay function (:func:`relay`), which publishes them to the
platform bus; a publish that fails is retried by the stream (the records are
reported as ``batchItemFailures``), so nothing committed is lost when
EventBridge is unavailable, and no request waits on it. The items expire by
TTL after :data:`RETENTION_S`.

Delivery is at least once: each event's ``Detail`` carries its ``event_id``
for consumers to drop repeats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from lwm_core.events import PUT_EVENTS_LIMIT, EventPublisher, serialize

OUTBOX_PREFIX = "OUTBOX#"
OUTBOX_SK = "EVENT"
RETENTION_S = 24 * 3600


def outbox_item(source: str, event: Any, *, event_id: str, now_s: int) -> dict[str, Any]:
    """The table item carrying ``event`` (plain Python values; the caller encodes them)."""
    detail_type, detail = serialize(event, event_id=event_id)
    return {
        "pk": f"{OUTBOX_PREFIX}{event_id}",
        "sk": OUTBOX_SK,
        "source": source,
        "detail_type": detail_type,
        "detail": detail,
        "expires_at": now_s + RETENTION_S,
    }


def _string(image: Mapping[str, Any], name: str) -> str:
    value = image.get(name, {})
    if not isinstance(value, Mapping) or not isinstance(value.get("S"), str):
        raise ValueError(f"outbox item without a string {name!r}")
    return str(value["S"])


def relay(event: Mapping[str, Any], publisher: EventPublisher) -> dict[str, list[dict[str, str]]]:
    """Publish the outbox items of a DynamoDB stream batch, in order.

    Returns the Lambda partial-batch answer: from the first record that could
    not be published on, every record is reported (the stream retries them in
    order); records that are not outbox inserts are skipped.
    """
    records: Sequence[Mapping[str, Any]] = event.get("Records") or []
    pending: list[tuple[str, dict[str, str]]] = []
    for record in records:
        if record.get("eventName") != "INSERT":
            continue
        image = record.get("dynamodb", {}).get("NewImage") or {}
        sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
        if not _string(image, "pk").startswith(OUTBOX_PREFIX):
            continue
        entry = {
            "Source": _string(image, "source"),
            "DetailType": _string(image, "detail_type"),
            "Detail": _string(image, "detail"),
            "EventBusName": publisher.bus,
        }
        pending.append((sequence, entry))
    for start in range(0, len(pending), PUT_EVENTS_LIMIT):
        batch = pending[start : start + PUT_EVENTS_LIMIT]
        failed = publisher.put_entries([entry for _, entry in batch])
        if failed:
            first = start + min(failed)
            return {"batchItemFailures": [{"itemIdentifier": seq} for seq, _ in pending[first:]]}
    return {"batchItemFailures": []}


def detail_of(entry_detail: str) -> dict[str, Any]:
    """The fields of a published ``Detail`` (consumers' side)."""
    value = json.loads(entry_detail)
    if not isinstance(value, dict):
        raise ValueError("an event's Detail is a JSON object")
    return value
