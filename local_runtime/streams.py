"""DynamoDB table streams feeding functions, as Lambda's event source mappings do it.

For each declared ``TableStream``, a :class:`StreamConsumer` reads the table's
stream from moto through boto3's ``dynamodbstreams`` (``DescribeStream``,
``GetShardIterator``, ``GetRecords``; every ``poll_interval_s`` while the stream
is idle), keeps the records that match one of the declared filter patterns
(EventBridge pattern semantics, moto's own matcher), and invokes the function
through the local workers with Lambda's DynamoDB Streams event, one batch at a
time and in stream order. It then does what the event source mapping service
does with the answer:

- ``batchItemFailures`` (``ReportBatchItemFailures``): the records before the
  first reported one are done; the batch is retried from that record;
- a function error (an exception, a timeout, an invalid failure report): the
  batch is split in two when ``bisect_on_error`` (splitting uses no retry), else
  retried; retries wait with exponential backoff;
- retries exhausted, or a record older than ``max_record_age_s``: a failure
  record (Lambda's on-failure destination document, ``DDBStreamBatchInfo``) goes
  to the declared queue and the consumer moves past those records.

No event source mapping is registered inside moto: moto would invoke the
function synchronously inside the writer's ``PutItem`` and then clear its shard.
What differs from AWS is listed in ``docs/local-runtime.md``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import time
import uuid
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from moto.events.models import EventPattern

from blueprint.model import Function, Platform, TableStream
from local_runtime import config
from local_runtime.workers import InvokeRequest, InvokeResult, LambdaRuntime, RuntimeStoppedError

if TYPE_CHECKING:
    from moto.events.utils import EventMessageType
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("local_runtime.streams")

EVENT_SOURCE: Final = "aws:dynamodb"
EVENT_VERSION: Final = "1.1"  # what Lambda puts in the records it delivers
FAILURE_RECORD_VERSION: Final = "1.0"
REPORT_BATCH_ITEM_FAILURES: Final = "ReportBatchItemFailures"
GET_RECORDS_LIMIT: Final = 1000  # DynamoDB Streams' maximum per GetRecords
PAYLOAD_LIMIT_BYTES: Final = config.LAMBDA_SYNC_PAYLOAD_LIMIT_BYTES
STOP_TIMEOUT_S: Final = 10.0

Condition = Literal["RetryAttemptsExhausted", "RecordAgeExceeded"]


class StreamMappingError(ValueError):
    """A declared stream cannot be run (an invalid filter pattern, a table without a stream)."""


@dataclass(frozen=True)
class PollerSettings:
    """How the local poller paces itself (AWS polls each shard about 4 times a second).

    Args:
        poll_interval_s: the wait between two empty ``GetRecords`` of a shard while
            records came in the last ``active_s``; the end-to-end latency is about
            half of it plus an invocation.
        idle_poll_interval_s: the wait once nothing came for ``active_s`` (AWS's pace),
            so that an idle local stack does not spend a core on polling; the first
            record after a quiet spell waits about half of it.
        active_s: how long after a record the stream counts as active.
        retry_backoff_s: the wait before the first retry of a failed batch; it doubles
            with each consecutive failure of the mapping, up to ``retry_backoff_max_s``.
        retry_backoff_max_s: the longest wait between two attempts.
    """

    poll_interval_s: float = 0.05
    idle_poll_interval_s: float = 0.25
    active_s: float = 5.0
    retry_backoff_s: float = 0.1
    retry_backoff_max_s: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> PollerSettings:
        """The defaults, with the idle poll interval from ``LWM_STREAM_POLL_MS`` when set."""
        value = (os.environ if environ is None else environ).get(config.ENV_STREAM_POLL_MS, "")
        if not value.strip():
            return cls()
        milliseconds = float(value)
        if milliseconds <= 0:
            raise ValueError(f"{config.ENV_STREAM_POLL_MS} must be positive, got {value!r}")
        return cls(poll_interval_s=milliseconds / 1000, idle_poll_interval_s=milliseconds / 1000)

    def interval(self, quiet_s: float) -> float:
        """The wait before the next read of a shard nothing came from for ``quiet_s``."""
        return self.poll_interval_s if quiet_s < self.active_s else self.idle_poll_interval_s

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` consecutive failed attempts (1 or more)."""
        return float(
            min(self.retry_backoff_s * 2 ** max(failures - 1, 0), self.retry_backoff_max_s)
        )


@dataclass(frozen=True)
class EventSourceMapping:
    """One declared stream in the terms of Lambda's ``CreateEventSourceMapping``.

    Both runtimes read a ``TableStream`` through this shape: the poller runs it,
    and ``tests/infra`` checks that the deployed ``AWS::Lambda::EventSourceMapping``
    carries the same values.
    """

    name: str
    table: str  # logical names; the runtimes resolve them to physical ones
    function: str
    starting_position: str
    batch_size: int
    maximum_batching_window_s: int
    maximum_retry_attempts: int
    maximum_record_age_s: int
    bisect_batch_on_function_error: bool
    function_response_types: tuple[str, ...]
    filter_patterns: tuple[str, ...]  # FilterCriteria.Filters[].Pattern, JSON text
    on_failure_queue: str | None
    parallelization_factor: int = 1

    @classmethod
    def of(cls, stream: TableStream) -> EventSourceMapping:
        """The mapping a ``TableStream`` declares (partial batch responses always on)."""
        return cls(
            name=stream.name,
            table=stream.table,
            function=stream.function,
            starting_position=stream.starting_position,
            batch_size=stream.batch_size,
            maximum_batching_window_s=stream.batching_window_s,
            maximum_retry_attempts=stream.retry_attempts,
            maximum_record_age_s=stream.max_record_age_s,
            bisect_batch_on_function_error=stream.bisect_on_error,
            function_response_types=(REPORT_BATCH_ITEM_FAILURES,),
            filter_patterns=tuple(
                json.dumps(dict(f), separators=(",", ":")) for f in stream.filters
            ),
            on_failure_queue=stream.on_failure_queue,
        )


def event_source_mappings(platform: Platform) -> list[EventSourceMapping]:
    """Every stream the platform declares, as the mapping both runtimes run."""
    return [EventSourceMapping.of(stream) for stream in platform.streams]


class RecordFilter:
    """Lambda's filter criteria: a record passes when it matches any pattern (or none is set).

    The patterns are EventBridge patterns over the record as the function receives
    it (``eventName``, ``dynamodb.Keys``, ``dynamodb.NewImage``...), matched by
    moto's EventBridge implementation (``moto.events.models.EventPattern``):
    exact values, ``prefix``, ``suffix``, ``equals-ignore-case``, ``anything-but``,
    ``exists``, ``numeric`` and ``$or``.
    """

    def __init__(self, patterns: Sequence[str]) -> None:
        self._patterns: list[EventPattern] = []
        for pattern in patterns:
            try:
                parsed = json.loads(pattern)
            except ValueError as e:
                raise StreamMappingError(f"filter pattern is not JSON: {pattern}") from e
            if not isinstance(parsed, dict) or not parsed:
                raise StreamMappingError(f"filter pattern must be a non-empty object: {pattern}")
            try:
                self._patterns.append(EventPattern.load(pattern))
            except Exception as e:  # moto's InvalidEventPatternException
                raise StreamMappingError(f"invalid filter pattern {pattern}: {e}") from e

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Whether ``record`` (a Lambda stream record) reaches the function."""
        # matches_event takes any JSON object, though it is typed for EventBridge events.
        event = cast("EventMessageType", dict(record))
        return not self._patterns or any(p.matches_event(event) for p in self._patterns)


# --- the event -----------------------------------------------------------------------------


def attribute_json(value: Mapping[str, Any]) -> dict[str, Any]:
    """A boto3-parsed AttributeValue in its wire (and Lambda event) form: binaries in base64."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {kind: base64.b64encode(inner).decode("ascii")}
    if kind == "BS":
        return {kind: [base64.b64encode(b).decode("ascii") for b in inner]}
    if kind == "M":
        return {kind: {k: attribute_json(v) for k, v in inner.items()}}
    if kind == "L":
        return {kind: [attribute_json(v) for v in inner]}
    return {kind: inner}


def _item_json(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: attribute_json(value) for name, value in item.items()}


def _epoch(value: object) -> float:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return time.time()


def lambda_record(record: Mapping[str, Any], stream_arn: str) -> dict[str, Any]:
    """One ``GetRecords`` record (as boto3 parses it) as Lambda puts it in the event."""
    change = record["dynamodb"]
    dynamodb: dict[str, Any] = {
        # DynamoDB Streams rounds it down to the second; Lambda sends epoch seconds.
        "ApproximateCreationDateTime": float(
            int(_epoch(change.get("ApproximateCreationDateTime")))
        ),
        "Keys": _item_json(change.get("Keys", {})),
    }
    for image in ("NewImage", "OldImage"):
        if image in change:
            dynamodb[image] = _item_json(change[image])
    dynamodb["SequenceNumber"] = str(change["SequenceNumber"])
    dynamodb["SizeBytes"] = int(change.get("SizeBytes", 0))
    dynamodb["StreamViewType"] = change["StreamViewType"]
    out: dict[str, Any] = {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": EVENT_VERSION,
        "eventSource": EVENT_SOURCE,
        "awsRegion": record.get("awsRegion", config.REGION),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    identity = record.get("userIdentity")
    if identity:  # TTL deletions; the Streams API capitalizes, Lambda's event does not
        out["userIdentity"] = {
            "type": identity.get("Type"),
            "principalId": identity.get("PrincipalId"),
        }
    return out


def stream_event(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The event a stream-fed function receives."""
    return {"Records": list(records)}


@dataclass(frozen=True)
class Outcome:
    """How an invocation went for its batch: ``done`` leading records are processed.

    ``done == len(batch)`` is a success; a smaller ``done`` with ``function_error``
    False is a partial batch failure (retry from ``batch[done]``); ``function_error``
    means the batch failed as a whole.
    """

    done: int
    function_error: bool


def read_outcome(result: InvokeResult, batch: Sequence[Mapping[str, Any]]) -> Outcome:
    """Read an invocation's answer as Lambda reads it with ``ReportBatchItemFailures`` on.

    Success: no ``batchItemFailures`` (null, absent, an empty list, an empty or
    non-object answer). Partial failure: every ``itemIdentifier`` is the
    ``SequenceNumber`` of a record of the batch; the earliest one is where the
    retry starts. Anything else (an error, an identifier that is empty, not a
    string or not in the batch) fails the whole batch.
    """
    if result.function_error:
        return Outcome(0, True)
    try:
        answer = json.loads(result.payload) if result.payload.strip() else None
    except ValueError:
        return Outcome(len(batch), False)  # not JSON: Lambda ignores the answer
    failures = answer.get("batchItemFailures") if isinstance(answer, dict) else None
    if failures is None or failures == []:
        return Outcome(len(batch), False)
    if not isinstance(failures, list):
        return Outcome(0, True)
    positions = {r["dynamodb"]["SequenceNumber"]: i for i, r in enumerate(batch)}
    failed: list[int] = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in positions:
            return Outcome(0, True)
        failed.append(positions[identifier])
    return Outcome(min(failed), False)


def failure_record(
    *,
    records: Sequence[Mapping[str, Any]],
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    condition: Condition,
    invocations: int,
    request_id: str | None,
    function_error: bool,
) -> dict[str, Any]:
    """The document Lambda sends to an on-failure destination for discarded stream records."""

    def arrival(record: Mapping[str, Any]) -> str:
        seconds = record["dynamodb"]["ApproximateCreationDateTime"]
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = "Unhandled"
    if invocations == 0:
        response = {}  # never invoked: there is no response to describe
    now = datetime.now(UTC)
    return {
        "requestContext": {
            "requestId": request_id or str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": invocations,
        },
        "responseContext": response,
        "version": FAILURE_RECORD_VERSION,
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z",
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": records[0]["dynamodb"]["SequenceNumber"],
            "endSequenceNumber": records[-1]["dynamodb"]["SequenceNumber"],
            "approximateArrivalOfFirstRecord": arrival(records[0]),
            "approximateArrivalOfLastRecord": arrival(records[-1]),
            "batchSize": len(records),
            "streamArn": stream_arn,
        },
    }


def take_batch(
    pending: deque[dict[str, Any]], batch_size: int, limit_bytes: int = PAYLOAD_LIMIT_BYTES
) -> list[dict[str, Any]]:
    """The next batch off the front of ``pending``: at most ``batch_size`` records whose
    event stays under Lambda's 6 MB synchronous payload limit (always at least one)."""
    batch: list[dict[str, Any]] = []
    size = len('{"Records":[]}')
    while pending and len(batch) < batch_size:
        record_size = len(json.dumps(pending[0], separators=(",", ":"))) + 1
        if batch and size + record_size > limit_bytes:
            break
        size += record_size
        batch.append(pending.popleft())
    return batch


# --- the consumer --------------------------------------------------------------------------


@dataclass
class _Batch:
    """Records delivered together, with what the retry rules need to know about them."""

    records: list[dict[str, Any]]
    retries: int = 0
    invocations: int = 0
    request_id: str | None = None
    function_error: bool = False


@dataclass
class ConsumerStats:
    """What a consumer did (for tests, diagnostics and the benchmark)."""

    invocations: int = 0
    records_delivered: int = 0
    records_filtered_out: int = 0
    records_discarded: int = 0
    failure_records_sent: int = 0
    last_error: str | None = field(default=None)


class StreamConsumer:
    """One event source mapping: a table's stream feeding one function, in order.

    Shards are read one after another, a child only after its parent (moto keeps
    one shard per table, which never closes); one batch is in flight at a time.
    """

    def __init__(
        self,
        mapping: EventSourceMapping,
        *,
        fn: Function,
        table_name: str,
        failure_queue_url: str | None,
        runtime: LambdaRuntime,
        clients: StreamClients,
        settings: PollerSettings,
    ) -> None:
        self.mapping = mapping
        self.stats = ConsumerStats()
        self._fn = fn
        self._table_name = table_name
        self._failure_queue_url = failure_queue_url
        self._runtime = runtime
        self._clients = clients
        self._settings = settings
        self._filter = RecordFilter(mapping.filter_patterns)
        self._function_arn = config.function_arn(config.physical_name(fn.name))
        self._stopping = asyncio.Event()
        self._started = asyncio.Event()
        self._failures = 0  # consecutive failed attempts, for the backoff
        self._task: asyncio.Task[None] | None = None
        self.stream_arn = ""

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start polling; returns once the first shard iterator is held, so that records
        written from now on reach the function even with ``LATEST``."""
        self._task = asyncio.create_task(self._run(), name=f"stream:{self.mapping.name}")
        started = asyncio.ensure_future(self._started.wait())
        await asyncio.wait({started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if self._task.done():
            self._task.result()  # raises what stopped it

    async def stop(self) -> None:
        """Stop after the batch in flight (if any) is answered; what is unread stays unread."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            await asyncio.wait_for(task, STOP_TIMEOUT_S)
        except TimeoutError:
            log.warning("[%s] did not stop within %.0f s", self.mapping.name, STOP_TIMEOUT_S)
        except Exception as e:  # _run logged it with its traceback
            log.debug("[%s] had stopped on %r", self.mapping.name, e)

    # --- reading -----------------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._consume()
        except _Stopping:
            pass
        except Exception:
            log.exception("[%s] the stream consumer stopped", self.mapping.name)
            raise

    async def _consume(self) -> None:
        table = await self._call_retrying(
            self._clients.dynamodb.describe_table, TableName=self._table_name
        )
        stream_arn = table["Table"].get("LatestStreamArn")
        if not stream_arn:
            raise StreamMappingError(f"table {self._table_name} has no stream")
        self.stream_arn = stream_arn
        finished: set[str] = set()
        first = True
        while True:
            shard_id = await self._next_shard(finished)
            start: str = self.mapping.starting_position if first else "TRIM_HORIZON"
            first = False
            await self._consume_shard(shard_id, start)
            finished.add(shard_id)

    async def _next_shard(self, finished: set[str]) -> str:
        """The first unfinished shard whose parent is finished (or gone), waiting for one."""
        while True:
            shards = await self._shards()
            known = {s["ShardId"] for s in shards}
            for shard in shards:
                parent = shard.get("ParentShardId")
                if shard["ShardId"] not in finished and (parent in finished or parent not in known):
                    return str(shard["ShardId"])
            self._started.set()  # nothing to read yet: the next shard starts at its beginning
            await self._sleep(self._settings.poll_interval_s)

    async def _shards(self) -> list[Any]:
        shards: list[Any] = []
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
        while True:
            page = await self._call_retrying(self._clients.streams.describe_stream, **kwargs)
            description = page["StreamDescription"]
            shards += description.get("Shards", [])
            last = description.get("LastEvaluatedShardId")
            if not last:
                return shards
            kwargs["ExclusiveStartShardId"] = last

    async def _iterator(self, shard_id: str, start: str, after: str | None) -> str:
        kwargs: dict[str, Any] = {"StreamArn": self.stream_arn, "ShardId": shard_id}
        if after is not None:
            kwargs |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
        else:
            kwargs["ShardIteratorType"] = start
        answer = await self._call_retrying(self._clients.streams.get_shard_iterator, **kwargs)
        return str(answer["ShardIterator"])

    async def _consume_shard(self, shard_id: str, start: str) -> None:
        """Deliver every matching record of one shard, until the shard is closed and drained."""
        pending: deque[dict[str, Any]] = deque()
        window_started: float | None = None  # when the oldest pending record was read
        last_read: str | None = None  # the sequence number of the last record read
        iterator: str | None = await self._iterator(shard_id, start, None)
        self._started.set()
        window = float(self.mapping.maximum_batching_window_s)
        last_record = time.monotonic()  # a new shard starts active
        while True:
            self._check_stopping()
            read = 0
            if iterator is not None and len(pending) < self.mapping.batch_size:
                try:
                    answer = await self._call(
                        self._clients.streams.get_records,
                        ShardIterator=iterator,
                        Limit=GET_RECORDS_LIMIT,
                    )
                except (ClientError, BotoCoreError) as e:
                    # An expired or unknown iterator (or moto restarting): read on after the
                    # last record read; nothing is skipped or read twice.
                    self._note_error(f"GetRecords: {e}")
                    await self._sleep(self._settings.backoff(1))
                    iterator = await self._iterator(shard_id, start, last_read)
                    continue
                records = answer.get("Records", [])
                iterator = answer.get("NextShardIterator")
                read = len(records)
                for raw in records:
                    record = lambda_record(raw, self.stream_arn)
                    last_read = record["dynamodb"]["SequenceNumber"]
                    if self._filter.matches(record):
                        if not pending:
                            window_started = time.monotonic()
                        pending.append(record)
                    else:
                        self.stats.records_filtered_out += 1
            full = len(pending) >= self.mapping.batch_size
            waited = window_started is not None and time.monotonic() - window_started >= window
            if pending and (full or waited or iterator is None or window == 0):
                await self._deliver(take_batch(pending, self.mapping.batch_size), shard_id)
                window_started = time.monotonic() if pending else None
                continue
            if iterator is None and not pending:
                return  # the shard is closed and everything in it was handled
            if read:
                last_record = time.monotonic()
            else:
                await self._sleep(self._settings.interval(time.monotonic() - last_record))

    # --- delivering --------------------------------------------------------------------------

    async def _deliver(self, records: list[dict[str, Any]], shard_id: str) -> None:
        """Get one batch processed, retried, split or given up on; it returns only then."""
        batches: deque[_Batch] = deque([_Batch(records)])
        while batches:
            batch = batches[0]
            expired = self._expired(batch.records)
            if expired:
                await self._give_up(batch, expired, shard_id, "RecordAgeExceeded")
                del batch.records[:expired]
                if not batch.records:
                    batches.popleft()
                continue
            result = await self._invoke(batch)
            outcome = read_outcome(result, batch.records)
            if outcome.done == len(batch.records):
                self.stats.records_delivered += len(batch.records)
                self._failures = 0
                batches.popleft()
                continue
            self._failures += 1
            self.stats.records_delivered += outcome.done
            del batch.records[: outcome.done]
            batch.function_error = outcome.function_error
            splits = (
                outcome.function_error
                and self.mapping.bisect_batch_on_function_error
                and len(batch.records) > 1
            )
            if splits:  # splitting a batch uses no retry
                half = (len(batch.records) + 1) // 2
                batches.popleft()
                for part in reversed((batch.records[:half], batch.records[half:])):
                    batches.appendleft(
                        _Batch(part, invocations=batch.invocations, request_id=batch.request_id)
                    )
            else:
                batch.retries += 1
                if batch.retries > self.mapping.maximum_retry_attempts:
                    await self._give_up(
                        batch, len(batch.records), shard_id, "RetryAttemptsExhausted"
                    )
                    batches.popleft()
                    continue
            await self._sleep(self._settings.backoff(self._failures))

    def _expired(self, records: Sequence[Mapping[str, Any]]) -> int:
        """How many leading records are older than the maximum record age (-1: no limit)."""
        limit = self.mapping.maximum_record_age_s
        if limit < 0:
            return 0
        oldest_allowed = time.time() - limit
        count = 0
        for record in records:
            if record["dynamodb"]["ApproximateCreationDateTime"] >= oldest_allowed:
                break
            count += 1
        return count

    async def _invoke(self, batch: _Batch) -> InvokeResult:
        payload = json.dumps(stream_event(batch.records), separators=(",", ":")).encode()
        request = InvokeRequest(payload)
        batch.invocations += 1
        batch.request_id = request.request_id
        self.stats.invocations += 1
        try:
            return await self._runtime.invoke(self._fn, request)
        except RuntimeStoppedError as e:
            raise _Stopping from e
        except Exception as e:  # the worker could not run it: a failed attempt, as in Lambda
            self._note_error(f"invoke: {e}")
            message = json.dumps({"errorType": type(e).__name__, "errorMessage": str(e)})
            return InvokeResult(request.request_id, message.encode(), True, "")

    async def _give_up(
        self, batch: _Batch, count: int, shard_id: str, condition: Condition
    ) -> None:
        """Describe the first ``count`` records of ``batch`` on the failure queue (or drop them)."""
        records = batch.records[:count]
        self.stats.records_discarded += len(records)
        first, last = (
            records[0]["dynamodb"]["SequenceNumber"],
            records[-1]["dynamodb"]["SequenceNumber"],
        )
        if self._failure_queue_url is None:
            log.warning(
                "[%s] %s: %d record(s) %s..%s discarded (no on-failure queue declared)",
                self.mapping.name,
                condition,
                len(records),
                first,
                last,
            )
            return
        document = failure_record(
            records=records,
            shard_id=shard_id,
            stream_arn=self.stream_arn,
            function_arn=self._function_arn,
            condition=condition,
            invocations=batch.invocations,
            request_id=batch.request_id,
            function_error=batch.function_error,
        )
        # The record of a discard is never lost while the runtime runs.
        await self._call_retrying(
            self._clients.sqs.send_message,
            QueueUrl=self._failure_queue_url,
            MessageBody=json.dumps(document),
        )
        self.stats.failure_records_sent += 1
        log.warning(
            "[%s] %s: %d record(s) %s..%s described on %s",
            self.mapping.name,
            condition,
            len(records),
            first,
            last,
            self.mapping.on_failure_queue,
        )

    # --- helpers -----------------------------------------------------------------------------

    async def _call(self, method: Any, **kwargs: Any) -> Any:
        """A boto3 call off the event loop (boto3 clients are thread-safe)."""
        self._check_stopping()
        return await asyncio.to_thread(method, **kwargs)

    async def _call_retrying(self, method: Any, **kwargs: Any) -> Any:
        """A boto3 call that is repeated, with backoff, until it answers (or the consumer stops).

        The stream's control calls fail only while the AWS endpoint is unreachable;
        giving up would stop the stream for good, so the consumer waits instead.
        """
        attempt = 0
        while True:
            try:
                return await self._call(method, **kwargs)
            except (ClientError, BotoCoreError) as e:
                attempt += 1
                self._note_error(f"{getattr(method, '__name__', method)}: {e}")
                await self._sleep(self._settings.backoff(attempt))

    async def _sleep(self, seconds: float) -> None:
        """Wait, but wake up at once to stop."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise _Stopping

    def _check_stopping(self) -> None:
        if self._stopping.is_set():
            raise _Stopping

    def _note_error(self, message: str) -> None:
        self.stats.last_error = message
        log.warning("[%s] %s", self.mapping.name, message)


class _Stopping(Exception):
    """The consumer was told to stop."""


class StreamClients:
    """The boto3 clients the consumers share, for the local AWS endpoint."""

    def __init__(self, endpoint: str) -> None:
        session = boto3.session.Session(
            aws_access_key_id=config.ACCESS_KEY_ID,
            aws_secret_access_key=config.SECRET_ACCESS_KEY,
            region_name=config.REGION,
        )
        self.dynamodb: DynamoDBClient = session.client("dynamodb", endpoint_url=endpoint)
        # No boto3-stubs extra for DynamoDB Streams in the dev group.
        self.streams: Any = session.client("dynamodbstreams", endpoint_url=endpoint)
        self.sqs: SQSClient = session.client("sqs", endpoint_url=endpoint)


class StreamPoller:
    """Every declared stream's consumer, started and stopped together."""

    def __init__(
        self,
        platform: Platform,
        runtime: LambdaRuntime,
        *,
        endpoint: str,
        tables: Mapping[str, str],
        queues: Mapping[str, str],
        settings: PollerSettings | None = None,
    ) -> None:
        mappings = event_source_mappings(platform)
        settings = settings or PollerSettings.from_env()
        self.consumers: dict[str, StreamConsumer] = {}
        if not mappings:
            return
        clients = StreamClients(endpoint)
        for mapping in mappings:
            queue = mapping.on_failure_queue
            self.consumers[mapping.name] = StreamConsumer(
                mapping,
                fn=platform.function(mapping.function),
                table_name=tables[mapping.table],
                failure_queue_url=queues[queue] if queue is not None else None,
                runtime=runtime,
                clients=clients,
                settings=settings,
            )

    async def start(self) -> None:
        """Start every consumer; each holds its first shard iterator when this returns."""
        await asyncio.gather(*(c.start() for c in self.consumers.values()))
        for consumer in self.consumers.values():
            log.info("stream %s -> %s", consumer.mapping.table, consumer.mapping.function)

    async def stop(self) -> None:
        """Stop every consumer (each after its batch in flight)."""
        await asyncio.gather(*(c.stop() for c in self.consumers.values()))

    def names(self) -> Iterable[str]:
        """The mappings being run."""
        return self.consumers.keys()
