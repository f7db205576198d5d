"""The search indexer over stream records of the chat item layout, with a fake index."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from functions.chat import search_index
from functions.chat import search_service as svc
from functions.chat.domain import Attachment, Message
from tests.events.chat_stream import message_record, stream_event

from .search_fakes import FakeMessageIndex, FakeSearchUow

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _message(text: str = "Quarterly caf&eacute; plan", **kw: Any) -> Message:
    return Message("m1", "c1", "ada", text, T0, **kw)


@pytest.fixture
def index(monkeypatch: pytest.MonkeyPatch) -> FakeMessageIndex:
    fake = FakeMessageIndex()
    monkeypatch.setattr(svc, "index_uow", lambda: FakeSearchUow(fake))
    return fake


def _invoke(*records: dict[str, Any]) -> dict[str, Any]:
    return dict(search_index.handler(stream_event(*records), _Context()))


class _Context:
    function_name = "lwm-local-chat-search-indexer"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:indexer"
    aws_request_id = "req-1"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


# --- reading records ---------------------------------------------------------------------


def test_the_sample_record_reads_as_a_message_change() -> None:
    from tests.events import sample

    record = DynamoDBRecord(sample("dynamodb_stream_chat_message")["Records"][0])
    change = search_index.message_change(record)
    assert change is not None and change.image is not None
    assert change.sequence == 111100000000017454423009
    assert change.image.text == "Shall we go over the caf&eacute; budget &amp; plan?"
    assert change.image.created_at == datetime(2026, 12, 2, 0, 28, 52, tzinfo=UTC)


def test_an_insert_of_the_item_layout_carries_every_field() -> None:
    edited = T0 + timedelta(minutes=5)
    msg = _message(
        attachments=[Attachment("k", "image/png", 10)], reactions={"👍": {"ben"}}, edited_at=edited
    )
    change = search_index.message_change(DynamoDBRecord(message_record("MODIFY", 7, msg, msg)))
    assert change is not None and change.image is not None
    assert (change.conversation_id, change.message_id, change.sequence) == ("c1", "m1", 7)
    assert change.image.author_id == "ada"
    assert change.image.edited_at == edited and change.image.deleted_at is None


def test_a_remove_is_a_change_without_an_image() -> None:
    change = search_index.message_change(
        DynamoDBRecord(message_record("REMOVE", 9, None, _message()))
    )
    assert change is not None and change.image is None


def test_records_of_other_items_are_ignored() -> None:
    record = message_record("INSERT", 3, _message())
    record["dynamodb"]["Keys"] = {"pk": {"S": "CONV#c1"}, "sk": {"S": "MEMBER#ada"}}
    assert search_index.message_change(DynamoDBRecord(record)) is None


@pytest.mark.parametrize("field", ["author_id", "created_at"])
def test_a_message_image_without_a_layout_field_is_malformed(field: str) -> None:
    record = message_record("INSERT", 3, _message())
    del record["dynamodb"]["NewImage"][field]
    with pytest.raises(search_index.MalformedRecordError):
        search_index.message_change(DynamoDBRecord(record))


# --- the handler ---------------------------------------------------------------------------


def test_a_batch_is_indexed_and_one_bad_record_fails_alone(index: FakeMessageIndex) -> None:
    # Given a batch whose middle record is malformed
    bad = message_record("INSERT", 11, replace(_message(), id="m2"))
    del bad["dynamodb"]["NewImage"]["created_at"]
    good_after = message_record("INSERT", 12, replace(_message("later"), id="m3"))
    # When it is handled
    result = _invoke(message_record("INSERT", 10, _message()), bad, good_after)
    # Then only that record is reported, by its sequence number, and the others landed
    assert result == {"batchItemFailures": [{"itemIdentifier": "11"}]}
    first = index.live("c1", "m1")
    assert first is not None and first.body == "Quarterly café plan"
    assert index.live("c1", "m3") is not None and index.live("c1", "m2") is None


def test_an_edit_then_a_replay_of_the_insert_keeps_the_edit(index: FakeMessageIndex) -> None:
    original = _message("first draft")
    edited = replace(original, text="final wording", edited_at=T0 + timedelta(minutes=1))
    assert _invoke(message_record("MODIFY", 21, edited, original)) == {"batchItemFailures": []}
    assert _invoke(message_record("INSERT", 20, original)) == {"batchItemFailures": []}
    live = index.live("c1", "m1")
    assert live is not None and live.body == "final wording"


def test_a_tombstone_image_removes_the_message(index: FakeMessageIndex) -> None:
    original = _message("secret plan")
    tombstone = replace(original, text="", deleted_at=T0 + timedelta(minutes=2))
    _invoke(message_record("INSERT", 30, original), message_record("MODIFY", 31, tombstone))
    assert index.live("c1", "m1") is None
