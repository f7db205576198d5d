"""Lambda entry point of the search indexer: the chat table's stream in, the index in step.

The event source mapping delivers message items only (a filter on ``sk`` prefix
``MSG#``) in batches of up to 100, ``NEW_AND_OLD_IMAGES``, with
``ReportBatchItemFailures``. Each record is applied in its own transaction;
one that fails (a malformed image, the database away) is reported by its
sequence number, the others still count, and Lambda retries from the first
failure (re-applying later records is harmless: see ``search.apply_change``).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)

from functions.chat import search
from functions.chat import search_service as svc
from lwm_core.observability import logger

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import (
        DynamoDBRecord,
    )

_CONV = "CONV#"
_MSG = "MSG#"

# Every record reported failed (say, the database is down) is a partial response
# too: Lambda retries the batch either way, and the function does not error.
processor = BatchProcessor(
    event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False
)


class MalformedRecordError(ValueError):
    """A stream record that is not a message change this indexer can read."""


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


def message_change(record: DynamoDBRecord) -> search.MessageChange | None:
    """The message change a stream record describes; ``None`` for other items.

    Raises:
        MalformedRecordError: a message record without a sequence number, or whose
            new image lacks a field of the item layout (``functions.chat.data``).
    """
    stream = record.dynamodb
    if stream is None:
        raise MalformedRecordError("the record has no dynamodb section")
    keys = stream.keys
    pk, sk = str(keys.get("pk", "")), str(keys.get("sk", ""))
    if not (pk.startswith(_CONV) and sk.startswith(_MSG)):
        return None  # the mapping's filter lets messages only; stay safe without it
    conversation_id, message_id = pk.removeprefix(_CONV), sk.removeprefix(_MSG)
    try:
        sequence = int(stream.sequence_number or "")
    except ValueError as e:
        raise MalformedRecordError("the record has no sequence number") from e
    if record.event_name is not None and record.event_name.name == "REMOVE":
        return search.MessageChange(conversation_id, message_id, sequence, None)
    new = stream.new_image
    try:
        image = search.MessageImage(
            conversation_id=conversation_id,
            message_id=message_id,
            author_id=str(new["author_id"]),
            text=str(new.get("text") or ""),
            created_at=datetime.fromisoformat(str(new["created_at"])),
            edited_at=_time(new.get("edited_at")),
            deleted_at=_time(new.get("deleted_at")),
        )
    except (KeyError, ValueError) as e:
        raise MalformedRecordError(f"message {message_id}: unreadable new image") from e
    return search.MessageChange(conversation_id, message_id, sequence, image)


def handle_stream_record(record: DynamoDBRecord) -> None:
    """Apply one record to the index (called by the batch processor, once per record)."""
    change = message_change(record)
    if change is None:
        return
    changed = search.apply_change(svc.index_uow(), change)
    logger.debug(
        "indexed" if changed else "already up to date",
        extra={"message_id": change.message_id, "sequence": change.sequence},
    )


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    """Index a batch of chat stream records; returns the ones that failed."""
    return process_partial_response(
        event=event, record_handler=handle_stream_record, processor=processor, context=context
    )
