"""Table streams feed functions locally: real moto, real workers, a small recording handler.

A platform of its own (``tests/e2e/stream_handlers``): one table with a stream
feeding two functions, each through its own filter, so that these tests prove the
poller (order, filters, partial batch failures, retries, the failure queue), not
the chat handlers that the real platform's streams feed.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import DynamoDBStreamModel

from blueprint.model import Function, KeyAttr, Platform, Queue, Table, TableStream
from local_runtime import LocalPlatform
from local_runtime.config import Ports, physical_name
from local_runtime.streams import PollerSettings

pytestmark = [pytest.mark.stack, pytest.mark.xdist_group("table-streams")]

TABLE = Table("stream-test", KeyAttr("pk"), KeyAttr("sk"), stream="NEW_AND_OLD_IMAGES")
FAILURES = Queue("stream-test-failures")
RETRY_ATTEMPTS = 2


def _fn(name: str) -> Function:
    return Function(
        name=name,
        handler="stream_handlers.recorder.handler",
        description=f"Table stream test {name}",
        memory_mb=128,
        timeout_s=5,
        local_workers=1,
    )


RECORDER = _fn("stream-test-recorder")
AUDIT = _fn("stream-test-audit")
STREAM_TEST_PLATFORM = Platform(
    services=(),
    tables=(TABLE,),
    queues=(FAILURES,),
    workers=(RECORDER, AUDIT),
    streams=(
        TableStream(
            table=TABLE.name,
            function=RECORDER.name,
            filters=(
                {
                    "eventName": ["INSERT"],
                    "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "EVT#"}]}}},
                },
            ),
            batch_size=10,
            retry_attempts=RETRY_ATTEMPTS,
            bisect_on_error=True,
            on_failure_queue=FAILURES.name,
        ),
        TableStream(table=TABLE.name, function=AUDIT.name, filters=({"eventName": ["REMOVE"]},)),
    ),
)
_T = TypeVar("_T")


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stream-out")


@pytest.fixture(scope="module")
def local(out_dir: Path) -> Iterator[LocalPlatform]:
    env = {"STREAM_TEST_OUT": str(out_dir)}
    platform = LocalPlatform(
        platform=STREAM_TEST_PLATFORM,
        ports=Ports.ephemeral(),
        postgres=False,
        python_path=[Path(__file__).parent],
        environment={RECORDER.name: env, AUDIT.name: env},
        stream_settings=PollerSettings(retry_backoff_s=0.02, retry_backoff_max_s=0.2),
    )
    try:
        platform.start()
        yield platform
    finally:
        platform.stop()


def _client(local: LocalPlatform, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=local.endpoints.aws,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="module")
def dynamodb(local: LocalPlatform) -> Any:
    return _client(local, "dynamodb")


@pytest.fixture(scope="module")
def table_name(local: LocalPlatform) -> str:
    return local.endpoints.resources.tables[TABLE.name]


def _item(pk: str, behaviour: str = "ok") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": "v1"}, "behaviour": {"S": behaviour}}


def _write_together(dynamodb: Any, table: str, items: list[dict[str, Any]]) -> None:
    """One transaction: its records reach the stream together, so they make one batch."""
    dynamodb.transact_write_items(
        TransactItems=[{"Put": {"TableName": table, "Item": i}} for i in items]
    )


def _invocations(out_dir: Path, fn: Function, prefix: str) -> list[dict[str, Any]]:
    """The recorded invocations of ``fn`` with a record whose pk starts with ``prefix``."""
    path = out_dir / f"{physical_name(fn.name)}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    out = []
    for line in lines:
        invocation = json.loads(line)
        if any(_pk(r).startswith(prefix) for r in invocation["event"]["Records"]):
            out.append(invocation)
    return out


def _pk(record: dict[str, Any]) -> str:
    return str(record["dynamodb"]["Keys"]["pk"]["S"])


def _wait(probe: Callable[[], _T | None], timeout_s: float = 15.0) -> _T:
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s")
        time.sleep(0.02)


def _succeeded(invocations: list[dict[str, Any]]) -> list[str]:
    """The pks of the records that were taken (in invocations that did not fail them)."""
    taken = []
    for invocation in invocations:
        if invocation["raised"]:
            continue
        failed = {f["itemIdentifier"] for f in invocation["failures"]}
        records = invocation["event"]["Records"]
        first_failed = next(
            (i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] in failed),
            len(records),
        )
        taken += [_pk(r) for r in records[:first_failed]]
    return taken


def test_records_arrive_in_order_filtered_and_shaped_as_lambda_sends_them(
    local: LocalPlatform, dynamodb: Any, table_name: str, out_dir: Path
) -> None:
    # Given matching inserts interleaved with records the filter leaves out
    expected = [f"EVT#order#{i:02d}" for i in range(15)]
    for i, pk in enumerate(expected):
        dynamodb.put_item(TableName=table_name, Item=_item(pk))
        dynamodb.put_item(TableName=table_name, Item=_item(f"SKIP#order#{i:02d}"))
    dynamodb.put_item(TableName=table_name, Item={**_item(expected[0]), "v": {"N": "2"}})  # MODIFY
    # When the recorder has taken all of them
    _wait(lambda: len(_succeeded(_invocations(out_dir, RECORDER, "EVT#order#"))) >= len(expected))
    invocations = _invocations(out_dir, RECORDER, "EVT#order#")
    records = [r for inv in invocations for r in inv["event"]["Records"]]
    # Then it got exactly the matching inserts, once each, in the order they were written
    assert [_pk(r) for r in records] == expected
    assert {r["eventName"] for r in records} == {"INSERT"}
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence)
    # and each event is Lambda's DynamoDB Streams event, from the table's stream
    stream_arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    for invocation in invocations:
        parsed = DynamoDBStreamModel.model_validate(invocation["event"])
        assert 1 <= len(parsed.Records) <= 10
        for record in parsed.Records:
            assert record.eventSourceARN == stream_arn
            assert record.eventSource == "aws:dynamodb"
            assert record.dynamodb.StreamViewType == "NEW_AND_OLD_IMAGES"
            assert record.dynamodb.NewImage == {"pk": _pk_of(record), "sk": "v1", "behaviour": "ok"}
            assert record.dynamodb.OldImage is None
    # and the other function's filter (REMOVE) let none of them through
    assert _invocations(out_dir, AUDIT, "EVT#order#") == []


def _pk_of(record: Any) -> str:
    return str(record.dynamodb.Keys["pk"])


def test_a_second_mapping_gets_its_own_records_with_the_old_image(
    local: LocalPlatform, dynamodb: Any, table_name: str, out_dir: Path
) -> None:
    # Given an item that is written, then deleted
    dynamodb.put_item(TableName=table_name, Item=_item("DEL#audit#1"))
    dynamodb.delete_item(TableName=table_name, Key={"pk": {"S": "DEL#audit#1"}, "sk": {"S": "v1"}})
    # When the audit mapping (filter: REMOVE) has delivered it
    (invocation,) = _wait(lambda: _invocations(out_dir, AUDIT, "DEL#audit#"))
    (record,) = invocation["event"]["Records"]
    # Then it got the removal only, with the item as it was
    assert record["eventName"] == "REMOVE"
    assert "NewImage" not in record["dynamodb"]
    assert record["dynamodb"]["OldImage"] == _item("DEL#audit#1")
    # and the recorder (filter: EVT# inserts) did not
    assert _invocations(out_dir, RECORDER, "DEL#audit#") == []


def test_a_partial_batch_failure_is_retried_from_the_first_failed_record(
    local: LocalPlatform, dynamodb: Any, table_name: str, out_dir: Path
) -> None:
    # Given one batch whose third record the handler reports as failed, the first time
    pks = [f"EVT#partial#{i}" for i in range(6)]
    items = [_item(pk, "partial-once" if i == 2 else "ok") for i, pk in enumerate(pks)]
    _write_together(dynamodb, table_name, items)
    # When every record was taken
    _wait(lambda: set(_succeeded(_invocations(out_dir, RECORDER, "EVT#partial#"))) == set(pks))
    first, retry, *rest = _invocations(out_dir, RECORDER, "EVT#partial#")
    # Then the first invocation had the whole batch and reported the third record
    assert [_pk(r) for r in first["event"]["Records"]] == pks
    assert first["failures"] == [
        {"itemIdentifier": first["event"]["Records"][2]["dynamodb"]["SequenceNumber"]}
    ]
    # and the retry started at that record, with the ones after it
    assert [_pk(r) for r in retry["event"]["Records"]] == pks[2:]
    assert rest == []
    # and each record was taken exactly once, in order
    assert _succeeded([first, retry]) == pks


def _failure_messages(local: LocalPlatform, timeout_s: float) -> list[dict[str, Any]]:
    sqs = _client(local, "sqs")
    url = local.endpoints.resources.queues[FAILURES.name]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        answer = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        if answer.get("Messages"):
            for m in answer["Messages"]:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            return [json.loads(m["Body"]) for m in answer["Messages"]]
    return []


def test_a_poison_record_ends_on_the_failure_queue_and_later_records_flow(
    local: LocalPlatform, dynamodb: Any, table_name: str, out_dir: Path
) -> None:
    # Given one batch with a record that always makes the function fail
    pks = [f"EVT#poison#{i}" for i in range(5)]
    _write_together(
        dynamodb, table_name, [_item(pk, "poison" if i == 2 else "ok") for i, pk in enumerate(pks)]
    )
    # When the poller has split the batch, retried the poison record and given up on it
    (message,) = _failure_messages(local, 15)
    # Then the failure queue describes that one record, as Lambda's on-failure destination does
    invocations = _invocations(out_dir, RECORDER, "EVT#poison#")
    poison = next(r for inv in invocations for r in inv["event"]["Records"] if _pk(r) == pks[2])
    stream_arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    streams = _client(local, "dynamodbstreams")
    (shard,) = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    seq = poison["dynamodb"]["SequenceNumber"]
    info = message["DDBStreamBatchInfo"]
    assert info["shardId"] == shard["ShardId"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"]) == (seq, seq)
    assert info["batchSize"] == 1
    assert info["streamArn"] == stream_arn
    assert datetime.fromisoformat(info["approximateArrivalOfFirstRecord"].replace("Z", "+00:00"))
    context = message["requestContext"]
    assert context["condition"] == "RetryAttemptsExhausted"
    assert context["functionArn"].endswith(f":function:{physical_name(RECORDER.name)}")
    # invoked in the batch, in the half it fell in, alone, then alone again for each retry
    with_poison = [
        inv for inv in invocations if any(_pk(r) == pks[2] for r in inv["event"]["Records"])
    ]
    assert context["approximateInvokeCount"] == len(with_poison) == 3 + RETRY_ATTEMPTS
    assert message["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert message["version"] == "1.0"
    assert datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))
    # and every other record of the batch was taken once, in order
    _wait(lambda: len(_succeeded(_invocations(out_dir, RECORDER, "EVT#poison#"))) == 4)
    assert _succeeded(_invocations(out_dir, RECORDER, "EVT#poison#")) == [
        pks[0],
        pks[1],
        pks[3],
        pks[4],
    ]
    # and a record written afterwards still flows
    dynamodb.put_item(TableName=table_name, Item=_item("EVT#after-poison#0"))
    _wait(lambda: _succeeded(_invocations(out_dir, RECORDER, "EVT#after-poison#")))
    assert (
        local.streams.consumers[STREAM_TEST_PLATFORM.streams[0].name].stats.records_discarded == 1
    )


def test_write_to_handler_latency(
    local: LocalPlatform, dynamodb: Any, table_name: str, out_dir: Path
) -> None:
    # Given an idle stream (each write waits for the previous one to be handled)
    latencies = []
    for i in range(20):
        pk = f"EVT#latency#{i:02d}"
        written = time.time()
        dynamodb.put_item(TableName=table_name, Item=_item(pk))
        (invocation,) = _wait(lambda pk=pk: _invocations(out_dir, RECORDER, pk))  # type: ignore[misc]
        latencies.append(invocation["started"] - written)
    # Then a write reaches the warm handler within a few poll intervals (not a benchmark:
    # bench/ has none for this; the figure is printed for the record)
    p50, worst = statistics.median(latencies) * 1000, max(latencies) * 1000
    print(f"stream write -> handler start: p50 {p50:.0f} ms, max {worst:.0f} ms")
    assert p50 < 1000
