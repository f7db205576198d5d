"""Least-privilege IAM for each declared ``Access``, through the resources' own ``grant_*``.

Each grant also acknowledges, on the function's role and nowhere else, the
cdk-nag findings its CDK-generated statements cause (wildcard action groups such
as ``s3:GetObject*``), with the reason they are acceptable.
"""

from __future__ import annotations

from aws_cdk import ArnFormat, Fn, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from blueprint.model import Access, Platform, TableStream
from infra_cdk.api.websocket_api import WebSocketApiConstruct
from infra_cdk.config import StageConfig
from infra_cdk.data.buckets import bucket_export
from infra_cdk.data.stack import DataStack
from infra_cdk.data.tables import table_export, table_name
from infra_cdk.nag import acknowledge

_SIGN_ACTIONS = {
    "sign": ("kms:Sign", "kms:GetPublicKey"),
    "verify": ("kms:Verify", "kms:GetPublicKey"),
}
_KMS_WRITE_REASON = (
    "Data-key actions (kms:GenerateDataKey*, kms:ReEncrypt*) that writing to a resource "
    "encrypted with the customer-managed key needs; the statement names that one key."
)
_S3_READ_REASON = (
    "Bucket.grant_read action groups (s3:GetObject*, s3:GetBucket*, s3:List*) on one "
    "declared bucket and its objects."
)
_S3_PUT_REASON = "Bucket.grant_put (s3:PutObject*, s3:Abort* for multipart) on one bucket."


class UnsupportedAccessError(ValueError):
    """A declared access has a kind or mode that has no grant."""


class AccessGrants(Construct):
    """Grants a function exactly what its ``Access`` declarations say, and nothing else.

    Tables are referenced by their fixed names and buckets by named exports, so
    the policies (and the nag findings) name ``table/lwm-dev-auth`` or
    ``lwm-dev-bucket-uploads-arn`` rather than generated identifiers.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        platform: Platform,
        data: DataStack,
        websocket: WebSocketApiConstruct | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._platform = platform
        self._data = data
        self._websocket = websocket
        self._acknowledged: set[tuple[str, str]] = set()
        self.tables: dict[str, dynamodb.ITable] = {
            t.name: dynamodb.Table.from_table_attributes(
                self,
                f"table-{t.name}",
                table_name=table_name(config, t),
                encryption_key=data.data_key,
                global_indexes=[index.name for index in t.indexes],
                # Rendered only where a stream consumer uses it (TableStreamsConstruct).
                table_stream_arn=(
                    Fn.import_value(table_export(config, t, "stream-arn")) if t.stream else None
                ),
            )
            for t in platform.tables
        }
        self.buckets: dict[str, s3.IBucket] = {
            b.name: s3.Bucket.from_bucket_attributes(
                self,
                f"bucket-{b.name}",
                bucket_arn=Fn.import_value(bucket_export(config, b, "arn")),
                bucket_name=Fn.import_value(bucket_export(config, b, "name")),
                encryption_key=data.data_key,
            )
            for b in platform.buckets
        }

    def grant(self, access: Access, function: lambda_.Function) -> None:
        """Give ``function`` the permissions ``access`` declares."""
        handlers = {
            "table": self._grant_table,
            "bucket": self._grant_bucket,
            "queue": self._grant_queue,
            "signing_key": self._grant_signing_key,
            "secret": self._grant_secret,
            "email": self._grant_email,
            "events": self._grant_events,
            "database": self._grant_database,
            "websocket": self._grant_websocket,
        }
        if access.kind not in handlers:
            raise UnsupportedAccessError(f"no grant for access kind {access.kind!r}")
        handlers[access.kind](access, function)

    def grant_stream_read(self, stream: TableStream, function: lambda_.Function) -> None:
        """What the event source mapping of ``stream`` needs of ``function``'s role.

        ``Table.grant_stream_read``: ``DescribeStream``, ``GetRecords`` and
        ``GetShardIterator`` on that table's stream, ``kms:Decrypt`` and
        ``DescribeKey`` on the data key, and ``dynamodb:ListStreams``, which has no
        resource-level permission (acknowledged with X-Ray's ``Resource::*`` in
        ``FunctionsConstruct``). Sending to the on-failure queue is granted by the
        mapping's destination; its data-key actions are acknowledged here.
        """
        self.tables[stream.table].grant_stream_read(function)
        if stream.on_failure_queue is not None:
            self._acknowledge_kms_write(function)

    def _grant_table(self, access: Access, function: lambda_.Function) -> None:
        table = self.tables[access.name]
        if access.mode == "read":
            table.grant_read_data(function)
        elif access.mode == "write":
            table.grant_write_data(function)
            self._acknowledge_kms_write(function)
        else:
            table.grant_read_write_data(function)
            self._acknowledge_kms_write(function)
        if self._platform.table(access.name).indexes:
            arn = (
                "arn:<AWS::Partition>:dynamodb:<AWS::Region>:<AWS::AccountId>:table/"
                f"{table_name(self._config, self._platform.table(access.name))}"
            )
            self._acknowledge(
                function,
                f"IAM5[Resource::{arn}/index/*]",
                f"Queries on the declared indexes of table {access.name} (Table.grant_*_data); "
                "an index holds only that table's items.",
            )

    def _grant_bucket(self, access: Access, function: lambda_.Function) -> None:
        bucket = self.buckets[access.name]
        arn_export = bucket_export(self._config, self._platform.bucket(access.name), "arn")
        if access.mode in ("read", "read_write"):
            bucket.grant_read(function)
            for action in ("s3:GetObject*", "s3:GetBucket*", "s3:List*"):
                self._acknowledge(function, f"IAM5[Action::{action}]", _S3_READ_REASON)
        if access.mode in ("write", "read_write"):
            bucket.grant_put(function)  # no s3:DeleteObject: nothing declares deletes
            self._acknowledge(function, "IAM5[Action::s3:Abort*]", _S3_PUT_REASON)
            self._acknowledge_kms_write(function)
        self._acknowledge(
            function,
            f"IAM5[Resource::{arn_export}/*]",
            f"Object-level access to every key of the declared bucket {access.name}; objects "
            "are keyed by id and the function owns the bucket's use.",
        )

    def _grant_queue(self, access: Access, function: lambda_.Function) -> None:
        queue = self._data.queues.queues[access.name]
        if access.mode in ("send", "write", "read_write"):
            queue.grant_send_messages(function)
            self._acknowledge_kms_write(function)
        if access.mode in ("read", "read_write"):
            queue.grant_consume_messages(function)

    def _grant_signing_key(self, access: Access, function: lambda_.Function) -> None:
        if access.mode not in _SIGN_ACTIONS:
            raise UnsupportedAccessError(f"signing key access must be sign or verify: {access}")
        self._data.signing_keys.keys[access.name].grant(function, *_SIGN_ACTIONS[access.mode])

    def _grant_secret(self, access: Access, function: lambda_.Function) -> None:
        grant_secret_read(function, self._data.secrets.secrets[access.name], self._data.data_key)

    def _grant_email(self, access: Access, function: lambda_.Function) -> None:
        """``ses:SendEmail`` from the configured sender only, on its domain and address."""
        stack = Stack.of(function)
        sender = self._config.mail_from
        identities = [
            stack.format_arn(
                service="ses",
                resource="identity",
                resource_name=name,
                arn_format=ArnFormat.SLASH_RESOURCE_NAME,
            )
            for name in (self._config.mail_domain, sender)
        ]
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["ses:SendEmail", "ses:SendRawEmail"],
                resources=identities,
                conditions={"StringEquals": {"ses:FromAddress": sender}},
            )
        )

    def _grant_events(self, access: Access, function: lambda_.Function) -> None:
        self._data.events.bus.grant_put_events_to(function)

    def _grant_database(self, access: Access, function: lambda_.Function) -> None:
        database = self._data.database
        database.proxy.grant_connect(function, database.admin_user)
        # The user name and port live in the secret.
        grant_secret_read(function, database.secret, self._data.data_key)

    def _grant_websocket(self, access: Access, function: lambda_.Function) -> None:
        """``execute-api:ManageConnections`` on the stage's ``@connections``, POST/GET/DELETE."""
        if access.mode != "manage" or self._websocket is None:
            raise UnsupportedAccessError(f"no WebSocket API to grant {access} on")
        self._websocket.grant_manage_connections(function)
        for finding in self._websocket.management_nag_findings():
            self._acknowledge(
                function,
                finding,
                "Post to, read and close any connection of the platform's one WebSocket API "
                "stage: connection ids are minted per client at $connect, so none can be named.",
            )

    def _acknowledge_kms_write(self, function: lambda_.Function) -> None:
        for action in ("kms:GenerateDataKey*", "kms:ReEncrypt*"):
            self._acknowledge(function, f"IAM5[Action::{action}]", _KMS_WRITE_REASON)

    def _acknowledge(self, function: lambda_.Function, rule: str, reason: str) -> None:
        role = function.role
        if role is None:  # functions here always have a role; keep mypy honest
            raise RuntimeError(f"{function.node.path} has no role")
        key = (role.node.path, rule)
        if key not in self._acknowledged:
            self._acknowledged.add(key)
            acknowledge(role, rule, reason)


def grant_secret_read(
    function: lambda_.Function, secret: secretsmanager.ISecret, key: kms.IKey
) -> None:
    """Read one secret and decrypt it through Secrets Manager only.

    ``Secret.grant_read`` would add the function's role to the data key's policy
    (a ``ViaServicePrincipal``), a reference from the Data stack to the Api stack
    that closes a dependency cycle. The key policy already delegates to IAM, so
    the same permissions on the role are enough.
    """
    stack = Stack.of(function)
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            resources=[secret.secret_arn],
        )
    )
    function.add_to_role_policy(
        iam.PolicyStatement(
            actions=["kms:Decrypt"],
            resources=[key.key_arn],
            conditions={
                "StringEquals": {"kms:ViaService": f"secretsmanager.{stack.region}.amazonaws.com"}
            },
        )
    )
