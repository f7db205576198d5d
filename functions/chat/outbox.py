"""Relays chat's domain events from the outbox (the chat table's stream) to the bus.

It also moves big groups' conversation lists: a message in a conversation of
more than ``data.INLINE_ACTIVITY_LIMIT`` members moves every member's place in
their list here, after the fact, instead of in the sender's transaction, and
at most once a minute per conversation (``data.ACTIVITY_INTERVAL_S``). A
failure there fails the batch before anything is published, so the stream
retries both.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any

from functions.chat import data
from functions.chat.data import EVENT_SOURCE, INLINE_ACTIVITY_LIMIT
from lwm_core.events import EventPublisher
from lwm_core.observability import logger
from lwm_core.outbox import OUTBOX_PREFIX, relay

POSTED = "message.posted"


@cache
def _publisher() -> EventPublisher:
    from functions.chat.settings import ChatEventsSettings

    settings = ChatEventsSettings()
    data.bind_table(settings.chat_table, settings.aws_region, settings.aws_endpoint_url)
    return EventPublisher(EVENT_SOURCE, settings.event_bus)


def _posted_in_big_groups(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    found = []
    for record in event.get("Records") or []:
        image = (record.get("dynamodb") or {}).get("NewImage") or {}
        if record.get("eventName") != "INSERT":
            continue
        if not str(image.get("pk", {}).get("S", "")).startswith(OUTBOX_PREFIX):
            continue
        if image.get("detail_type", {}).get("S") != POSTED:
            continue
        detail = json.loads(image.get("detail", {}).get("S") or "{}")
        if len(detail.get("member_ids") or ()) > INLINE_ACTIVITY_LIMIT:
            found.append(detail)
    return found


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point (DynamoDB stream, outbox inserts only, ReportBatchItemFailures)."""
    publisher = _publisher()
    for posted in _posted_in_big_groups(event):
        at = datetime.fromisoformat(posted["created_at"])
        if data.claim_activity_move(posted["conversation_id"], datetime.now(UTC)):
            data.move_activity(posted["conversation_id"], posted["member_ids"], at)
    answer = relay(event, publisher)
    if answer["batchItemFailures"]:
        logger.warning(
            "events not published yet", extra={"count": len(answer["batchItemFailures"])}
        )
    return answer
