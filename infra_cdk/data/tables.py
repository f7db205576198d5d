"""DynamoDB tables, one per ``blueprint`` Table."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from blueprint.model import KeyAttr, Table
from infra_cdk.config import StageConfig

_ATTR_TYPES = {
    "S": dynamodb.AttributeType.STRING,
    "N": dynamodb.AttributeType.NUMBER,
    "B": dynamodb.AttributeType.BINARY,
}


def _attr(key: KeyAttr) -> dynamodb.Attribute:
    return dynamodb.Attribute(name=key.name, type=_ATTR_TYPES[key.type])


def table_name(config: StageConfig, table: Table) -> str:
    """The physical table name, e.g. ``lwm-dev-auth``."""
    return f"{config.prefix}-{table.name}"


def table_export(config: StageConfig, table: Table, attribute: str) -> str:
    """The export name of a table attribute, e.g. ``lwm-dev-table-chat-stream-arn``.

    Only the stream ARN is exported: it carries the stream's creation label
    (``.../stream/2026-12-02T03:20:05.123``), which no name alone can give, and
    the Api stack's event source mappings and stream read grants need it.
    """
    return f"{config.prefix}-table-{table.name}-{attribute}"


class TablesConstruct(Construct):
    """On-demand tables encrypted with the data key, PITR on, TTL, GSIs and streams as declared.

    ``dynamodb.Table`` rather than ``TableV2``: a TableV2 with a customer-managed
    key cannot be rendered in an environment-agnostic stack, and synth is offline.
    Tables have fixed names (``lwm-<stage>-<name>``) so the Api stack can refer to
    them by name, without a cross-stack reference per table; a table with a stream
    also exports its stream ARN (:func:`table_export`) for the stream consumers.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        tables: Iterable[Table],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        declared = list(tables)
        self.tables: dict[str, dynamodb.Table] = {
            t.name: self._build_table(t, config, key) for t in declared
        }
        for table in declared:
            if table.stream:
                stream_arn = self.tables[table.name].table_stream_arn
                assert stream_arn is not None  # the table was built with its stream
                Stack.of(self).export_value(
                    stream_arn, name=table_export(config, table, "stream-arn")
                )

    def _build_table(self, table: Table, config: StageConfig, key: kms.IKey) -> dynamodb.Table:
        resource = dynamodb.Table(
            self,
            table.name,
            table_name=table_name(config, table),
            partition_key=_attr(table.partition_key),
            sort_key=_attr(table.sort_key) if table.sort_key else None,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=key,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            time_to_live_attribute=table.ttl_attribute,
            stream=dynamodb.StreamViewType[table.stream] if table.stream else None,
            deletion_protection=config.is_prod,
            removal_policy=config.removal_policy,
        )
        for index in table.indexes:
            resource.add_global_secondary_index(
                index_name=index.name,
                partition_key=_attr(index.partition_key),
                sort_key=_attr(index.sort_key) if index.sort_key else None,
                projection_type=dynamodb.ProjectionType.ALL,
            )
        return resource
