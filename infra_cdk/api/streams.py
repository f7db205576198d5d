"""Lambda event source mappings, one per ``blueprint`` TableStream: table streams feed functions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from constructs import Construct

from blueprint.model import TableStream
from infra_cdk.api.grants import AccessGrants
from infra_cdk.data.stack import DataStack

# One concurrent batch per shard: records reach the function in stream order, as
# the local runtime's poller delivers them (local_runtime/streams.py).
_PARALLELIZATION_FACTOR = 1


class TableStreamsConstruct(Construct):
    """Each declared stream as an event source mapping on the table's stream.

    The mapping starts where declared, batches and retries as declared, filters
    with the declared Lambda filter patterns (records that match none never
    invoke the function), lets the function report partial failures
    (``ReportBatchItemFailures``) and describes what it gave up on to the declared
    on-failure queue. The function may read that one stream (and decrypt it with
    the data key) and send to that one queue, nothing more.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        streams: Iterable[TableStream],
        data: DataStack,
        functions: Mapping[str, lambda_.Function],
        grants: AccessGrants,
    ) -> None:
        super().__init__(scope, construct_id)
        self._data = data
        self._functions = functions
        self._grants = grants
        self.mappings: dict[str, lambda_.EventSourceMapping] = {
            stream.name: self._build_mapping(stream) for stream in streams
        }

    def _build_mapping(self, stream: TableStream) -> lambda_.EventSourceMapping:
        function = self._functions[stream.function]
        table = self._grants.tables[stream.table]
        on_failure = (
            event_sources.SqsDlq(self._data.queues.queues[stream.on_failure_queue])
            if stream.on_failure_queue is not None
            else None
        )
        mapping = lambda_.EventSourceMapping(
            self,
            stream.name,
            target=function,
            event_source_arn=table.table_stream_arn,
            starting_position=lambda_.StartingPosition[stream.starting_position],
            batch_size=stream.batch_size,
            max_batching_window=Duration.seconds(stream.batching_window_s),
            retry_attempts=stream.retry_attempts,
            max_record_age=Duration.seconds(stream.max_record_age_s),
            bisect_batch_on_error=stream.bisect_on_error,
            report_batch_item_failures=True,
            parallelization_factor=_PARALLELIZATION_FACTOR,
            filters=[lambda_.FilterCriteria.filter(dict(f)) for f in stream.filters] or None,
            on_failure=on_failure,  # SqsDlq grants the function sqs:SendMessage on the queue
        )
        self._grants.grant_stream_read(stream, function)
        return mapping
