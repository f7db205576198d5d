"""The local stream poller: filters, Lambda's stream event, failure reports, and the retry
rules of an event source mapping, against an in-memory stream and a fake function."""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel
from botocore.exceptions import ClientError

from blueprint.model import Function, TableStream
from blueprint.platform import CHAT_STREAMS
from local_runtime.moto_streams import prune
from local_runtime.streams import (
    EventSourceMapping,
    PollerSettings,
    RecordFilter,
    StreamConsumer,
    StreamMappingError,
    attribute_json,
    failure_record,
    lambda_record,
    read_outcome,
    stream_event,
    take_batch,
)
from local_runtime.workers import InvokeRequest, InvokeResult, RuntimeStoppedError

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-12-02T00:00:00.000"
FN = Function(name="consumer", handler="m.handler", description="test consumer")


def _raw(seq: int, pk: str = "EVT#1", *, event: str = "INSERT", age_s: float = 0) -> dict[str, Any]:
    """A GetRecords record as boto3 parses it."""
    return {
        "eventID": f"id-{seq}",
        "eventName": event,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "ApproximateCreationDateTime": datetime.fromtimestamp(time.time() - age_s, UTC),
            "Keys": {"pk": {"S": pk}},
            "NewImage": {"pk": {"S": pk}, "n": {"N": str(seq)}},
            "SequenceNumber": str(seq),
            "SizeBytes": 30,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    }


def _record(seq: int, pk: str = "EVT#1", **kwargs: Any) -> dict[str, Any]:
    return lambda_record(_raw(seq, pk, **kwargs), STREAM_ARN)


# --- filters --------------------------------------------------------------------------------


def _matches(pattern: dict[str, Any], record: dict[str, Any]) -> bool:
    return RecordFilter([json.dumps(pattern)]).matches(record)


def test_filters_match_as_lambda_filter_patterns_do() -> None:
    # Given a stream record of an outbox insert
    record = _record(1, "OUTBOX#1")
    keys = record["dynamodb"]["Keys"]
    keys["sk"] = {"S": "MSG#2"}
    # Then exact values, prefixes, suffixes and anything-but match on the record's fields
    assert _matches({"eventName": ["INSERT"]}, record)
    assert not _matches({"eventName": ["REMOVE", "MODIFY"]}, record)
    assert _matches({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "OUTBOX#"}]}}}}, record)
    assert not _matches({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "MSG#"}]}}}}, record)
    assert _matches({"dynamodb": {"Keys": {"sk": {"S": [{"suffix": "#2"}]}}}}, record)
    assert _matches({"eventName": [{"anything-but": ["REMOVE"]}]}, record)
    assert not _matches({"eventName": [{"anything-but": ["INSERT"]}]}, record)
    # and every field of a pattern must match (AND)
    assert not _matches(
        {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "X"}]}}}}, record
    )
    # and exists tests leaves only: the value under the type key, not the attribute itself
    assert _matches({"dynamodb": {"NewImage": {"n": {"N": [{"exists": True}]}}}}, record)
    assert not _matches({"dynamodb": {"NewImage": {"n": [{"exists": True}]}}}, record)
    assert _matches({"dynamodb": {"NewImage": {"gone": {"S": [{"exists": False}]}}}}, record)
    # and numbers are strings in stream records ({"N": "1"}): numeric filters never match them
    assert not _matches({"dynamodb": {"NewImage": {"n": {"N": [{"numeric": [">", 0]}]}}}}, record)
    assert _matches({"dynamodb": {"NewImage": {"n": {"N": ["1"]}}}}, record)


def test_a_record_passes_when_it_matches_any_filter_or_there_is_none() -> None:
    record = _record(1, "MSG#1")
    either = RecordFilter(
        [json.dumps({"eventName": ["REMOVE"]}), json.dumps({"eventName": ["INSERT"]})]
    )
    neither = RecordFilter(
        [json.dumps({"eventName": ["REMOVE"]}), json.dumps({"eventName": ["MODIFY"]})]
    )
    assert either.matches(record)
    assert not neither.matches(record)
    assert RecordFilter([]).matches(record)


@pytest.mark.parametrize("pattern", ["[1]", "{}", '{"a": 1}', '{"a": []}', "not json"])
def test_an_invalid_filter_pattern_is_refused_before_anything_runs(pattern: str) -> None:
    with pytest.raises(StreamMappingError):
        RecordFilter([pattern])


def test_the_declared_chat_filters_select_outbox_inserts_and_message_changes() -> None:
    # Given the chat table's declared streams (the outbox and the search index)
    by_function = {s.function: s for s in CHAT_STREAMS}
    outbox, search, presence = (
        RecordFilter(EventSourceMapping.of(by_function[name]).filter_patterns)
        for name in ("chat-events", "chat-search-indexer", "chat-presence")
    )
    message = _record(1, "CONV#1")
    message["dynamodb"]["Keys"]["sk"] = {"S": "MSG#0001"}
    event = _record(2, "OUTBOX#01")
    event["dynamodb"]["Keys"]["sk"] = {"S": "EVT"}
    removed_event = {**event, "eventName": "REMOVE"}
    # Then the outbox consumer gets outbox inserts only, the indexer message changes only
    assert (outbox.matches(event), outbox.matches(removed_event), outbox.matches(message)) == (
        True,
        False,
        False,
    )
    assert (search.matches(message), search.matches(event)) == (True, False)
    # and presence, on the connections table, a user's devices only (not each connection)
    devices, connection = _record(3, "USER#ada"), _record(4, "CONN#c1")
    assert (presence.matches(devices), presence.matches(connection)) == (True, False)


# --- the event ------------------------------------------------------------------------------


def test_attribute_values_are_written_as_on_the_wire() -> None:
    # Given attribute values as boto3 parses them (binaries as bytes)
    value = {
        "M": {
            "b": {"B": b"\x00\x01"},
            "bs": {"BS": [b"a", b"b"]},
            "l": {"L": [{"N": "1"}, {"B": b"z"}, {"NULL": True}]},
            "ss": {"SS": ["x"]},
            "ok": {"BOOL": False},
        }
    }
    # Then binaries are base64 text again and everything else is unchanged
    assert attribute_json(value) == {
        "M": {
            "b": {"B": "AAE="},
            "bs": {"BS": ["YQ==", "Yg=="]},
            "l": {"L": [{"N": "1"}, {"B": "eg=="}, {"NULL": True}]},
            "ss": {"SS": ["x"]},
            "ok": {"BOOL": False},
        }
    }


def test_the_event_is_lambdas_dynamodb_streams_event() -> None:
    # Given two records read from the stream, one a removal with only the old image
    raw = _raw(7, "EVT#7")
    removal = _raw(8, "EVT#8", event="REMOVE")
    removal["dynamodb"]["OldImage"] = removal["dynamodb"].pop("NewImage")
    created = raw["dynamodb"]["ApproximateCreationDateTime"]
    # When they are put in an event
    event = stream_event([lambda_record(raw, STREAM_ARN), lambda_record(removal, STREAM_ARN)])
    first = event["Records"][0]
    # Then each carries what Lambda puts in a record, with the stream's ARN
    assert set(first) == {
        "eventID",
        "eventName",
        "eventVersion",
        "eventSource",
        "awsRegion",
        "dynamodb",
        "eventSourceARN",
    }
    assert first["eventSourceARN"] == STREAM_ARN and first["eventVersion"] == "1.1"
    # with the creation time in whole epoch seconds and the sequence number as text
    assert first["dynamodb"]["ApproximateCreationDateTime"] == float(int(created.timestamp()))
    assert first["dynamodb"]["SequenceNumber"] == "7"
    # and the whole event validates with Powertools' parser model
    parsed = DynamoDBStreamModel.model_validate(json.loads(json.dumps(event)))
    assert [r.eventName for r in parsed.Records] == ["INSERT", "REMOVE"]
    assert parsed.Records[0].dynamodb.NewImage == {"pk": "EVT#7", "n": 7}
    assert parsed.Records[1].dynamodb.NewImage is None
    assert parsed.Records[1].dynamodb.OldImage == {"pk": "EVT#8", "n": 8}


def test_a_ttl_deletion_names_dynamodb_as_lambda_does() -> None:
    # Given a removal by TTL, as the Streams API describes it
    raw = {
        **_raw(9, event="REMOVE"),
        "userIdentity": {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"},
    }
    # Then the event's record names the service in Lambda's spelling
    record = lambda_record(raw, STREAM_ARN)
    assert record["userIdentity"] == {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    parsed = DynamoDBStreamModel.model_validate({"Records": [record]})
    assert parsed.Records[0].userIdentity is not None


def test_a_batch_holds_at_most_batch_size_records_and_stays_under_the_payload_limit() -> None:
    pending = deque(_record(i) for i in range(10))
    # Then a batch takes at most batch_size records, from the front, in order
    assert [r["dynamodb"]["SequenceNumber"] for r in take_batch(pending, 4)] == ["0", "1", "2", "3"]
    # and stops before the payload limit (but always takes one record)
    one = len(json.dumps(pending[0], separators=(",", ":")))
    assert len(take_batch(pending, 100, limit_bytes=2 * one + 20)) == 2
    assert len(take_batch(pending, 100, limit_bytes=1)) == 1
    assert len(pending) == 3


# --- answers --------------------------------------------------------------------------------


def _result(payload: object, error: bool = False) -> InvokeResult:
    text = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return InvokeResult("req-1", text, error, "")


@pytest.mark.parametrize(
    "payload",
    [None, {}, {"batchItemFailures": []}, {"batchItemFailures": None}, "done", b"", b"not json"],
)
def test_answers_without_failures_are_a_success(payload: object) -> None:
    batch = [_record(1), _record(2)]
    assert read_outcome(_result(payload), batch).done == 2


def test_a_partial_failure_is_retried_from_the_earliest_reported_record() -> None:
    batch = [_record(1), _record(2), _record(3), _record(4)]
    answer = {"batchItemFailures": [{"itemIdentifier": "4"}, {"itemIdentifier": "2"}]}
    outcome = read_outcome(_result(answer), batch)
    assert (outcome.done, outcome.function_error) == (1, False)


@pytest.mark.parametrize(
    "failures",
    [
        [{"itemIdentifier": "99"}],  # not in the batch
        [{"itemIdentifier": ""}],
        [{"itemIdentifier": None}],
        [{"id": "1"}],  # a bad key name
        "1",  # not a list
    ],
)
def test_an_invalid_failure_report_fails_the_whole_batch(failures: object) -> None:
    outcome = read_outcome(_result({"batchItemFailures": failures}), [_record(1), _record(2)])
    assert (outcome.done, outcome.function_error) == (0, True)


def test_a_function_error_fails_the_whole_batch() -> None:
    error = _result({"errorType": "RuntimeError", "errorMessage": "boom"}, error=True)
    assert read_outcome(error, [_record(1)]).function_error


def test_the_failure_record_is_lambdas_on_failure_document() -> None:
    records = [_record(5), _record(6), _record(7)]
    document = failure_record(
        records=records,
        shard_id="shardId-1",
        stream_arn=STREAM_ARN,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:f",
        condition="RetryAttemptsExhausted",
        invocations=3,
        request_id="req-9",
        function_error=True,
    )
    assert document["requestContext"] == {
        "requestId": "req-9",
        "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:f",
        "condition": "RetryAttemptsExhausted",
        "approximateInvokeCount": 3,
    }
    assert document["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert document["version"] == "1.0"
    assert datetime.fromisoformat(document["timestamp"].replace("Z", "+00:00")).tzinfo
    info = document["DDBStreamBatchInfo"]
    assert {k: info[k] for k in ("shardId", "startSequenceNumber", "endSequenceNumber")} == {
        "shardId": "shardId-1",
        "startSequenceNumber": "5",
        "endSequenceNumber": "7",
    }
    assert (info["batchSize"], info["streamArn"]) == (3, STREAM_ARN)
    assert info["approximateArrivalOfFirstRecord"].endswith("Z")


def test_backoff_doubles_up_to_its_maximum() -> None:
    settings = PollerSettings(retry_backoff_s=0.1, retry_backoff_max_s=0.5)
    assert [settings.backoff(n) for n in (1, 2, 3, 4, 5)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_mappings_keep_every_declared_setting() -> None:
    stream = TableStream(
        table="t",
        function="f",
        filters=({"eventName": ["INSERT"]},),
        batch_size=7,
        batching_window_s=3,
        retry_attempts=4,
        max_record_age_s=120,
        bisect_on_error=False,
        on_failure_queue="q",
        starting_position="LATEST",
    )
    mapping = EventSourceMapping.of(stream)
    assert (mapping.name, mapping.table, mapping.function) == (stream.name, "t", "f")
    assert (mapping.batch_size, mapping.maximum_batching_window_s) == (7, 3)
    assert (mapping.maximum_retry_attempts, mapping.maximum_record_age_s) == (4, 120)
    assert (mapping.bisect_batch_on_function_error, mapping.starting_position) == (False, "LATEST")
    assert mapping.on_failure_queue == "q"
    assert [json.loads(p) for p in mapping.filter_patterns] == [{"eventName": ["INSERT"]}]
    assert mapping.function_response_types == ("ReportBatchItemFailures",)


def test_pruning_drops_the_oldest_shard_iterators() -> None:
    iterators = {f"it-{i}": i for i in range(10)}
    assert prune(iterators, keep=4) == 6
    assert list(iterators) == ["it-6", "it-7", "it-8", "it-9"]


# --- the consumer, against an in-memory stream ---------------------------------------------


class FakeStreams:
    """DynamoDB Streams in memory: shards of records, iterators as (shard, position)."""

    def __init__(self, shards: dict[str, list[dict[str, Any]]]) -> None:
        self.shards = shards
        self.parents: dict[str, str] = {}
        self.closed: set[str] = set()
        self.failures_to_inject = 0
        self.iterators_requested: list[dict[str, Any]] = []

    def describe_table(self, TableName: str) -> dict[str, Any]:  # boto3 argument names
        return {"Table": {"LatestStreamArn": STREAM_ARN}}

    def describe_stream(self, StreamArn: str) -> dict[str, Any]:
        shards = [
            {"ShardId": s, **({"ParentShardId": self.parents[s]} if s in self.parents else {})}
            for s in self.shards
        ]
        return {"StreamDescription": {"Shards": shards}}

    def get_shard_iterator(self, **kwargs: Any) -> dict[str, Any]:
        self.iterators_requested.append(kwargs)
        records = self.shards[kwargs["ShardId"]]
        kind = kwargs["ShardIteratorType"]
        if kind == "TRIM_HORIZON":
            position = 0
        elif kind == "LATEST":
            position = len(records)
        else:
            after = kwargs["SequenceNumber"]
            position = next(
                i + 1 for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == after
            )
        return {"ShardIterator": json.dumps([kwargs["ShardId"], position])}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        if self.failures_to_inject:
            self.failures_to_inject -= 1
            error = {"Error": {"Code": "ExpiredIteratorException", "Message": "expired"}}
            raise ClientError(error, "GetRecords")  # type: ignore[arg-type]
        shard, position = json.loads(ShardIterator)
        records = self.shards[shard][position : position + Limit]
        end = position + len(records)
        closed = shard in self.closed and end == len(self.shards[shard])
        following = None if closed else json.dumps([shard, end])
        return {"Records": records, "NextShardIterator": following}


class FakeSqs:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def send_message(self, QueueUrl: str, MessageBody: str) -> dict[str, Any]:
        self.messages.append(json.loads(MessageBody))
        return {"MessageId": str(len(self.messages))}


class FakeClients:
    def __init__(self, streams: FakeStreams) -> None:
        self.dynamodb = streams
        self.streams = streams
        self.sqs = FakeSqs()


Answer = Callable[[list[dict[str, Any]]], tuple[object, bool]]


class FakeRuntime:
    """Runs a Python function as the consumer's function; records every batch it got."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.batches: list[list[str]] = []  # the sequence numbers of each invocation

    async def invoke(self, fn: Function, request: InvokeRequest) -> InvokeResult:
        records = json.loads(request.payload)["Records"]
        self.batches.append([r["dynamodb"]["SequenceNumber"] for r in records])
        payload, error = self.answer(records)
        return InvokeResult(request.request_id, json.dumps(payload).encode(), error, "")


def _seqs(records: Sequence[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["SequenceNumber"] for r in records]


def _ok(records: list[dict[str, Any]]) -> tuple[object, bool]:
    return None, False


def _failing_on(*bad: str) -> Answer:
    def answer(records: list[dict[str, Any]]) -> tuple[object, bool]:
        if set(_seqs(records)) & set(bad):
            return {"errorType": "RuntimeError", "errorMessage": "poison"}, True
        return None, False

    return answer


def _consumer(
    streams: FakeStreams,
    runtime: FakeRuntime,
    *,
    queue: str | None = "https://queue",
    settings: PollerSettings = PollerSettings(0.005, 0.001, 0.01),
    **declared: Any,
) -> tuple[StreamConsumer, FakeClients]:
    declared = {"batch_size": 10, "retry_attempts": 2, "bisect_on_error": True, **declared}
    stream = TableStream(
        table="t", function=FN.name, on_failure_queue="q" if queue else None, **declared
    )
    clients = FakeClients(streams)
    consumer = StreamConsumer(
        EventSourceMapping.of(stream),
        fn=FN,
        table_name="lwm-local-t",
        failure_queue_url=queue,
        runtime=runtime,  # type: ignore[arg-type]
        clients=clients,  # type: ignore[arg-type]
        settings=settings,
    )
    return consumer, clients


async def _until(probe: Callable[[], object], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError("not within the timeout")
        await asyncio.sleep(0.005)


async def test_without_bisecting_a_failing_batch_is_retried_then_described_whole() -> None:
    # Given a batch of three whose middle record always fails the function, no bisecting
    streams = FakeStreams({"shard-1": [_raw(1), _raw(2), _raw(3)]})
    runtime = FakeRuntime(_failing_on("2"))
    consumer, clients = _consumer(streams, runtime, bisect_on_error=False)
    await consumer.start()
    await _until(lambda: clients.sqs.messages)
    # When a later record arrives
    streams.shards["shard-1"].append(_raw(4))
    await _until(lambda: runtime.batches[-1] == ["4"])
    await consumer.stop()
    # Then the batch was invoked once and retried twice, then described as a whole
    assert runtime.batches == [["1", "2", "3"]] * 3 + [["4"]]
    (document,) = clients.sqs.messages
    info = document["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "1",
        "3",
        3,
    )
    assert document["requestContext"]["approximateInvokeCount"] == 3
    assert document["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert consumer.stats.records_discarded == 3


async def test_bisecting_isolates_the_failing_record_without_using_retries() -> None:
    # Given a batch of eight whose sixth record always fails the function
    streams = FakeStreams({"shard-1": [_raw(i) for i in range(1, 9)]})
    runtime = FakeRuntime(_failing_on("6"))
    consumer, clients = _consumer(streams, runtime, retry_attempts=1)
    await consumer.start()
    await _until(lambda: clients.sqs.messages and runtime.batches[-1] == ["7", "8"])
    await consumer.stop()
    # Then the batch was halved until the record was alone, then retried once, then described
    assert runtime.batches == [
        [str(i) for i in range(1, 9)],
        ["1", "2", "3", "4"],
        ["5", "6", "7", "8"],
        ["5", "6"],
        ["5"],
        ["6"],
        ["6"],
        ["7", "8"],
    ]
    (document,) = clients.sqs.messages
    assert document["DDBStreamBatchInfo"]["batchSize"] == 1
    assert document["DDBStreamBatchInfo"]["startSequenceNumber"] == "6"
    assert document["requestContext"]["approximateInvokeCount"] == 5


async def test_a_partial_failure_that_keeps_failing_describes_the_rest_of_the_batch() -> None:
    # Given a function that always reports the third record of what it gets as failed
    streams = FakeStreams({"shard-1": [_raw(i) for i in range(1, 6)]})

    def answer(records: list[dict[str, Any]]) -> tuple[object, bool]:
        failed = [r for r in records if r["dynamodb"]["SequenceNumber"] == "3"]
        return {"batchItemFailures": [{"itemIdentifier": "3"}] if failed else []}, False

    runtime = FakeRuntime(answer)
    consumer, clients = _consumer(streams, runtime, retry_attempts=1)
    await consumer.start()
    await _until(lambda: clients.sqs.messages)
    await consumer.stop()
    # Then the retry starts at the failed record, and after the retries the rest is described
    assert runtime.batches == [["1", "2", "3", "4", "5"], ["3", "4", "5"]]
    (document,) = clients.sqs.messages
    info = document["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        "3",
        "5",
        3,
    )
    assert "functionError" not in document["responseContext"]
    assert consumer.stats.records_delivered == 2


async def test_records_older_than_the_maximum_age_are_described_without_an_invocation() -> None:
    # Given an old record followed by a fresh one
    streams = FakeStreams({"shard-1": [_raw(1, age_s=600), _raw(2)]})
    runtime = FakeRuntime(_ok)
    consumer, clients = _consumer(streams, runtime, max_record_age_s=60)
    await consumer.start()
    await _until(lambda: runtime.batches)
    await consumer.stop()
    # Then only the fresh record reached the function; the old one is described as too old
    assert runtime.batches == [["2"]]
    (document,) = clients.sqs.messages
    assert document["requestContext"]["condition"] == "RecordAgeExceeded"
    assert document["requestContext"]["approximateInvokeCount"] == 0
    assert document["responseContext"] == {}


async def test_without_a_failure_queue_given_up_records_are_discarded() -> None:
    streams = FakeStreams({"shard-1": [_raw(1), _raw(2)]})
    runtime = FakeRuntime(_failing_on("1"))
    consumer, clients = _consumer(streams, runtime, queue=None, retry_attempts=0)
    await consumer.start()
    await _until(lambda: runtime.batches and runtime.batches[-1] == ["2"])
    await consumer.stop()
    # Then the record was tried once (no retries), dropped, and the next one delivered
    assert runtime.batches == [["1", "2"], ["1"], ["2"]]
    assert clients.sqs.messages == []
    assert consumer.stats.records_discarded == 1


async def test_a_lost_iterator_resumes_after_the_last_record_read() -> None:
    # Given a stream whose GetRecords fails now and then
    streams = FakeStreams({"shard-1": [_raw(1), _raw(2)]})
    runtime = FakeRuntime(_ok)
    consumer, _ = _consumer(streams, runtime)
    await consumer.start()
    await _until(lambda: runtime.batches)
    streams.failures_to_inject = 2
    streams.shards["shard-1"] += [_raw(3), _raw(4)]
    await _until(lambda: sum(len(b) for b in runtime.batches) == 4)
    await consumer.stop()
    # Then every record reached the function once, in order, and reading resumed after "2"
    assert [s for b in runtime.batches for s in b] == ["1", "2", "3", "4"]
    resumed = [r for r in streams.iterators_requested if r.get("SequenceNumber")]
    assert resumed and {r["SequenceNumber"] for r in resumed} == {"2"}


async def test_a_child_shard_is_read_after_its_closed_parent() -> None:
    # Given a closed parent shard and its child
    streams = FakeStreams({"child": [_raw(3), _raw(4)], "parent": [_raw(1), _raw(2)]})
    streams.parents["child"] = "parent"
    streams.closed.add("parent")
    runtime = FakeRuntime(_ok)
    consumer, _ = _consumer(streams, runtime)
    await consumer.start()
    await _until(lambda: sum(len(b) for b in runtime.batches) == 4)
    await consumer.stop()
    # Then the parent's records came first, and the child was read from its beginning
    assert runtime.batches == [["1", "2"], ["3", "4"]]


async def test_latest_skips_what_was_written_before_the_start_and_filters_apply() -> None:
    streams = FakeStreams({"shard-1": [_raw(1, "EVT#old")]})
    runtime = FakeRuntime(_ok)
    consumer, _ = _consumer(
        streams,
        runtime,
        starting_position="LATEST",
        filters=({"dynamodb": {"Keys": {"pk": {"S": [{"prefix": "EVT#"}]}}}},),
    )
    await consumer.start()
    streams.shards["shard-1"] += [_raw(2, "SKIP#1"), _raw(3, "EVT#new")]
    await _until(lambda: runtime.batches)
    await consumer.stop()
    assert runtime.batches == [["3"]]
    assert consumer.stats.records_filtered_out == 1


async def test_a_batching_window_waits_for_a_full_batch() -> None:
    # Given a long batching window and a batch size of two
    streams = FakeStreams({"shard-1": [_raw(1), _raw(2), _raw(3)]})
    runtime = FakeRuntime(_ok)
    consumer, _ = _consumer(streams, runtime, batch_size=2, batching_window_s=60)
    await consumer.start()
    await _until(lambda: runtime.batches)
    await asyncio.sleep(0.1)
    await consumer.stop()
    # Then the full batch went at once and the lone third record is still waiting
    assert runtime.batches == [["1", "2"]]


async def test_stop_is_prompt_during_a_backoff_and_sends_no_failure() -> None:
    # Given a consumer retrying a failing batch with a long backoff
    streams = FakeStreams({"shard-1": [_raw(1)]})
    runtime = FakeRuntime(_failing_on("1"))
    slow = PollerSettings(poll_interval_s=0.005, retry_backoff_s=30, retry_backoff_max_s=30)
    consumer, clients = _consumer(streams, runtime, retry_attempts=100, settings=slow)
    await consumer.start()
    await _until(lambda: runtime.batches)
    # When it is stopped
    started = time.monotonic()
    await consumer.stop()
    # Then it stops at once, giving nothing up
    assert time.monotonic() - started < 1.0
    assert clients.sqs.messages == []


async def test_a_stopping_runtime_ends_the_consumer_without_a_failure() -> None:
    streams = FakeStreams({"shard-1": [_raw(1)]})
    runtime = FakeRuntime(_ok)

    async def stopped(fn: Function, request: InvokeRequest) -> InvokeResult:
        raise RuntimeStoppedError("stopping")

    runtime.invoke = stopped  # type: ignore[method-assign]
    consumer, clients = _consumer(streams, runtime)
    await consumer.start()
    await asyncio.sleep(0.05)
    await consumer.stop()
    assert clients.sqs.messages == [] and consumer.stats.records_discarded == 0


def test_the_idle_poll_interval_comes_from_the_environment() -> None:
    assert PollerSettings.from_env({}).poll_interval_s == 0.05
    assert PollerSettings.from_env({"LWM_STREAM_POLL_MS": "250"}).poll_interval_s == 0.25
    with pytest.raises(ValueError, match="LWM_STREAM_POLL_MS"):
        PollerSettings.from_env({"LWM_STREAM_POLL_MS": "0"})
