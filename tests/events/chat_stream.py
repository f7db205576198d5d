"""Chat table stream events (DynamoDB Streams, ``NEW_AND_OLD_IMAGES``) built from the sample.

The images are the chat service's own item layout (``functions.chat.data``), so
a change of layout shows up here; the envelope is the sample
``dynamodb_stream_chat_message.json``, shaped as Lambda delivers it.
"""

from __future__ import annotations

import uuid
from typing import Any

from functions.chat import data
from functions.chat.domain import Message
from tests.events import sample


def message_record(
    event_name: str,
    sequence: int,
    new: Message | None,
    old: Message | None = None,
) -> dict[str, Any]:
    """One stream record of a message item: INSERT/MODIFY carry ``new``, REMOVE ``old``."""
    record: dict[str, Any] = sample("dynamodb_stream_chat_message")["Records"][0]
    item = new or old
    assert item is not None
    record["eventID"] = uuid.uuid4().hex
    record["eventName"] = event_name
    stream = record["dynamodb"]
    stream["SequenceNumber"] = str(sequence)
    stream["Keys"] = data._to_wire({"pk": f"CONV#{item.conversation_id}", "sk": f"MSG#{item.id}"})
    stream.pop("NewImage", None)
    if new is not None:
        stream["NewImage"] = data._to_wire(data._message_item(new))
    if old is not None:
        stream["OldImage"] = data._to_wire(data._message_item(old))
    return record


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    """A batch of records, as the event source mapping hands it to the function."""
    return {"Records": list(records)}
