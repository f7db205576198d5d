"""Table streams: one event source mapping per declared ``TableStream``, with its filters,
its retry rules and its on-failure queue, and stream read grants on that one stream."""

from __future__ import annotations

import json
from typing import Any

import pytest

from blueprint.model import TableStream

from . import cfn
from .conftest import Synthesis

pytestmark = [pytest.mark.infra, pytest.mark.xdist_group("infra")]

STREAM_READS = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
LIST_STREAMS = "dynamodb:ListStreams"


def _function_id(synth: Synthesis, name: str) -> str:
    physical = f"{synth.config.prefix}-{name}"
    (function_id,) = [
        k
        for k, r in cfn.resources(synth.api_json, "AWS::Lambda::Function").items()
        if cfn.props(r).get("FunctionName") == physical
    ]
    return function_id


def _mappings(synth: Synthesis) -> dict[str, dict[str, Any]]:
    """Declared stream name -> properties of its AWS::Lambda::EventSourceMapping."""
    out = {}
    for stream in synth.platform.streams:
        out[stream.name] = cfn.props(
            cfn.resources(synth.api_json, "AWS::Lambda::EventSourceMapping")[
                cfn.logical_id(synth.api.streams.mappings[stream.name])
            ]
        )
    return out


def _exported_from(synth: Synthesis, value: Any) -> str | None:
    """The Data stack logical id behind an imported value (``Fn::ImportValue``)."""
    (name,) = cfn.imported_names(value)
    return cfn.exports(synth.data_json).get(name)


def test_tables_with_a_stream_export_its_arn(synth: Synthesis) -> None:
    prefix = synth.config.prefix
    outputs = synth.data_json.get("Outputs", {}).values()
    exported = {o.get("Export", {}).get("Name"): o["Value"] for o in outputs}
    for table in synth.platform.tables:
        name = f"{prefix}-table-{table.name}-stream-arn"
        # Given a declared table
        if not table.stream:
            # Then a table without a stream exports nothing
            assert name not in exported, table.name
            continue
        # and a table with one exports its stream's ARN (it carries the stream's label)
        table_id = cfn.logical_id(synth.data.tables.tables[table.name])
        assert exported[name] == {"Fn::GetAtt": [table_id, "StreamArn"]}, table.name


def test_every_declared_stream_is_one_mapping_and_nothing_else(synth: Synthesis) -> None:
    # Given the declared streams and the mappings of both templates
    deployed = cfn.resources(synth.api_json, "AWS::Lambda::EventSourceMapping")
    # Then there is one mapping per declared stream, in the Api stack only
    assert len(deployed) == len(synth.platform.streams)
    assert not cfn.resources(synth.data_json, "AWS::Lambda::EventSourceMapping")
    assert synth.platform.streams, "the platform declares streams"
    for stream in synth.platform.streams:
        p = _mappings(synth)[stream.name]
        # and it reads the declared table's stream into the declared function
        assert _exported_from(synth, p["EventSourceArn"]) == cfn.logical_id(
            synth.data.tables.tables[stream.table]
        ), stream.name
        assert p["FunctionName"] == {"Ref": _function_id(synth, stream.function)}, stream.name


def _declared_properties(stream: TableStream) -> dict[str, Any]:
    return {
        "StartingPosition": stream.starting_position,
        "BatchSize": stream.batch_size,
        "MaximumBatchingWindowInSeconds": stream.batching_window_s,
        "MaximumRetryAttempts": stream.retry_attempts,
        "MaximumRecordAgeInSeconds": stream.max_record_age_s,
        "BisectBatchOnFunctionError": stream.bisect_on_error,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "ParallelizationFactor": 1,
    }


def test_mappings_batch_retry_and_report_failures_as_declared(synth: Synthesis) -> None:
    for stream in synth.platform.streams:
        # Given a declared stream and its mapping
        p = _mappings(synth)[stream.name]
        # Then it starts, batches and retries as declared, one batch per shard at a time,
        # and takes partial batch responses
        assert {k: p.get(k) for k in _declared_properties(stream)} == _declared_properties(
            stream
        ), stream.name


def test_mappings_filter_with_the_declared_patterns(synth: Synthesis) -> None:
    for stream in synth.platform.streams:
        p = _mappings(synth)[stream.name]
        # Given a declared stream with filters
        if not stream.filters:
            assert "FilterCriteria" not in p, stream.name
            continue
        # Then each declared filter is one pattern of the mapping's filter criteria
        patterns = [json.loads(f["Pattern"]) for f in p["FilterCriteria"]["Filters"]]
        assert patterns == [dict(f) for f in stream.filters], stream.name


def test_discarded_records_are_described_on_the_declared_queue(synth: Synthesis) -> None:
    for stream in synth.platform.streams:
        p = _mappings(synth)[stream.name]
        # Given a declared stream
        if stream.on_failure_queue is None:
            # Then without a failure queue there is no destination
            assert "DestinationConfig" not in p, stream.name
            continue
        # and with one, records given up on are described on that queue of the Data stack
        destination = p["DestinationConfig"]["OnFailure"]["Destination"]
        queue = synth.data.queues.queues[stream.on_failure_queue]
        assert _exported_from(synth, destination) == cfn.logical_id(queue), stream.name


def _role_statements(synth: Synthesis, name: str) -> list[dict[str, Any]]:
    function = cfn.resources(synth.api_json, "AWS::Lambda::Function")[_function_id(synth, name)]
    role_id = cfn.target(cfn.props(function)["Role"])
    assert role_id is not None
    return cfn.role_statements(synth.api_json, role_id)


def test_consumers_read_only_their_stream_and_send_only_to_their_queue(synth: Synthesis) -> None:
    consumers = {s.function for s in synth.platform.streams}
    for fn in synth.platform.functions():
        statements = _role_statements(synth, fn.name)
        reads = [  # statements on a table's stream (tables' own ARNs aside)
            s
            for s in statements
            if any(
                name.endswith("-stream-arn")
                for r in cfn.as_list(s["Resource"])
                for name in cfn.imported_names(r)
            )
        ]
        lists = [s for s in statements if LIST_STREAMS in cfn.as_list(s["Action"])]
        # Given a function fed by no stream
        if fn.name not in consumers:
            # Then it may neither read nor list streams
            assert reads == [] and lists == [], fn.name
            assert not [s for s in statements if "dynamodb:DescribeStream" in s["Action"]]
            continue
        streams = [s for s in synth.platform.streams if s.function == fn.name]
        # and a stream consumer reads exactly the streams of its tables, with read actions only
        read_tables = set()
        for statement in reads:
            assert set(cfn.as_list(statement["Action"])) == STREAM_READS, fn.name
            read_tables |= {_exported_from(synth, r) for r in cfn.as_list(statement["Resource"])}
        assert read_tables == {
            cfn.logical_id(synth.data.tables.tables[s.table]) for s in streams
        }, fn.name
        # and lists streams (no resource-level permission exists for it)
        assert [cfn.as_list(s["Resource"]) for s in lists] == [["*"]], fn.name
        # and may send to its failure queue (queue access it declares aside)
        declared_queues = {a.name for a in fn.access if a.kind == "queue"}
        sends = {
            _exported_from(synth, r)
            for s in statements
            if "sqs:SendMessage" in cfn.as_list(s["Action"])
            for r in cfn.as_list(s["Resource"])
        }
        expected = {
            cfn.logical_id(synth.data.queues.queues[q])
            for q in {s.on_failure_queue for s in streams} | declared_queues
            if q is not None
        }
        assert sends == expected, fn.name


def test_list_streams_is_acknowledged_with_its_reason(synth: Synthesis) -> None:
    # Given the acknowledged Resource::* findings on the stream consumers' roles
    suppressed = [
        v
        for report in synth.report["pluginReports"]
        for v in report["suppressedViolations"]
        if v["ruleName"] == "AwsSolutions-IAM5[Resource::*]"
    ]
    for name in {s.function for s in synth.platform.streams}:
        role = synth.api.functions[name].role
        assert role is not None
        reasons = [v["reason"] for v in suppressed if v["acknowledgedAt"] == role.node.path]
        # Then each consumer's acknowledgment explains ListStreams, not only X-Ray
        assert reasons, name
        assert all("dynamodb:ListStreams" in r for r in reasons), name
