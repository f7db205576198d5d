"""The local AWS endpoint: moto in server mode, holding every resource the platform declares.

:class:`MotoServer` runs moto's ``ThreadedMotoServer`` on 127.0.0.1 inside
this process (so that :mod:`local_runtime.lambda_seam` can reach moto's Lambda
model) and switches on Step Functions execution. :func:`provision` creates,
from ``Platform``, every table, bucket, queue (with its dead-letter queue),
KMS signing key, secret, the SES sender, the EventBridge bus with its rules,
the schedules and the functions. Provisioning is idempotent: moto's state
belongs to the moto process, so a second provisioning of the same endpoint
finds the first one's resources and keeps them.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, Final, TypeVar

import boto3
from botocore.exceptions import ClientError

from blueprint.model import Bucket, Function, Platform, Queue, Schedule, Secret, SigningKey, Table
from local_runtime import config
from local_runtime.net import check_free

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_kms import KMSClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_scheduler import EventBridgeSchedulerClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ses import SESClient
    from mypy_boto3_sqs import SQSClient

MAIL_DOMAIN: Final = "linkwithmentor.example"  # RFC 2606 name; email-validator accepts it
MAIL_FROM: Final = f"no-reply@{MAIL_DOMAIN}"
EVENT_BUS: Final = config.physical_name("events")
ROLE_NAME: Final = config.physical_name("lambda")
DLQ_RETENTION_S: Final = 14 * 24 * 3600
STOP_TIMEOUT_S: Final = 10.0
LAMBDA_RUNTIME: Final = "python3.12"  # what the CDK deploys; moto only records it
log = logging.getLogger("local_runtime.aws")

_EXISTS = frozenset(
    {
        "ResourceInUseException",  # dynamodb
        "BucketAlreadyOwnedByYou",
        "BucketAlreadyExists",
        "QueueAlreadyExists",
        "ResourceExistsException",  # secretsmanager
        "ResourceAlreadyExistsException",  # events
        "ConflictException",  # scheduler
        "EntityAlreadyExists",  # iam
    }
)
_T = TypeVar("_T")


class MotoServer:
    """moto's server on 127.0.0.1, in a process of its own (``local_runtime.moto_process``).

    Args:
        port: where to listen (0: any free port).
        lambda_endpoint: the local Lambda Invoke API, where moto's invocations go.
        functions: physical names of the functions routed there.
    """

    def __init__(self, port: int, lambda_endpoint: str, functions: Sequence[str]) -> None:
        self._requested_port = port
        self._lambda_endpoint = lambda_endpoint
        self._functions = list(functions)
        self._process: subprocess.Popen[str] | None = None
        self._log: threading.Thread | None = None
        self.url = ""

    def start(self) -> str:
        """Start the process and wait until it serves (about a second); returns the URL."""
        check_free(self._requested_port, config.ENV_AWS_PORT)
        cmd = [
            sys.executable,
            "-m",
            "local_runtime.moto_process",
            "--port",
            str(self._requested_port),
            "--lambda-endpoint",
            self._lambda_endpoint,
        ]
        for name in self._functions:
            cmd += ["--function", name]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(config.REPO_ROOT), str(config.REPO_ROOT / "layers" / "core")]
            ),
            "PYTHONUNBUFFERED": "1",
        }
        process = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=config.REPO_ROOT,
            env=env,
            start_new_session=True,  # Ctrl-C reaches the runtime only; it stops moto itself
        )
        self._process = process
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline().split()
        if len(line) != 2 or line[0] != config.MOTO_READY:
            process.kill()
            raise RuntimeError(f"the AWS endpoint did not start:\n{process.stderr.read()[-4000:]}")
        self._log = threading.Thread(
            target=_forward, args=(process.stderr,), name="moto-log", daemon=True
        )
        self._log.start()
        self.url = config.url(int(line[1]))
        return self.url

    def stop(self) -> None:
        """Stop the process (its state is gone with it)."""
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdin is not None:
            process.stdin.close()


def _forward(stream: IO[str]) -> None:
    """moto's warnings and errors, in the runtime's log."""
    for line in stream:
        if line.strip():
            log.warning("[aws] %s", line.rstrip())


@dataclass
class Provisioned:
    """The physical names, URLs, ids and ARNs of everything :func:`provision` made."""

    tables: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)  # logical name -> URL
    dead_letter_queues: dict[str, str] = field(default_factory=dict)
    signing_keys: dict[str, str] = field(default_factory=dict)  # logical name -> key id
    secrets: dict[str, str] = field(default_factory=dict)  # logical name -> ARN
    functions: dict[str, str] = field(default_factory=dict)  # logical name -> ARN
    event_bus: str = EVENT_BUS
    mail_from: str = MAIL_FROM

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready copy, for ``.local/endpoints.json``."""
        return asdict(self)


class _Clients:
    """boto3 clients for the local endpoint, each built on first use."""

    def __init__(self, endpoint: str) -> None:
        self._endpoint = endpoint
        self._session = boto3.session.Session(
            aws_access_key_id=config.ACCESS_KEY_ID,
            aws_secret_access_key=config.SECRET_ACCESS_KEY,
            region_name=config.REGION,
        )

    @cached_property
    def dynamodb(self) -> DynamoDBClient:
        return self._session.client("dynamodb", endpoint_url=self._endpoint)

    @cached_property
    def s3(self) -> S3Client:
        return self._session.client("s3", endpoint_url=self._endpoint)

    @cached_property
    def sqs(self) -> SQSClient:
        return self._session.client("sqs", endpoint_url=self._endpoint)

    @cached_property
    def kms(self) -> KMSClient:
        return self._session.client("kms", endpoint_url=self._endpoint)

    @cached_property
    def secretsmanager(self) -> SecretsManagerClient:
        return self._session.client("secretsmanager", endpoint_url=self._endpoint)

    @cached_property
    def ses(self) -> SESClient:
        return self._session.client("ses", endpoint_url=self._endpoint)

    @cached_property
    def events(self) -> EventBridgeClient:
        return self._session.client("events", endpoint_url=self._endpoint)

    @cached_property
    def scheduler(self) -> EventBridgeSchedulerClient:
        return self._session.client("scheduler", endpoint_url=self._endpoint)

    @cached_property
    def lambda_(self) -> LambdaClient:
        return self._session.client("lambda", endpoint_url=self._endpoint)

    @cached_property
    def iam(self) -> Any:  # no boto3-stubs extra for IAM in the dev group
        return self._session.client("iam", endpoint_url=self._endpoint)


def _ensure(create: Callable[[], _T], existing: Callable[[], _T]) -> _T:
    """``create()``, or ``existing()`` when the resource is already there."""
    try:
        return create()
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") in _EXISTS:
            return existing()
        raise


def provision(platform: Platform, endpoint: str, cors_origins: list[str]) -> Provisioned:
    """Create every resource ``platform`` declares at the moto ``endpoint``."""
    aws = _Clients(endpoint)
    out = Provisioned()
    for table in platform.tables:
        out.tables[table.name] = _table(aws, table)
    for bucket in platform.buckets:
        out.buckets[bucket.name] = _bucket(aws, bucket, cors_origins)
    for queue in platform.queues:
        out.dead_letter_queues[queue.name], out.queues[queue.name] = _queue(aws, queue)
    for key in platform.signing_keys:
        out.signing_keys[key.name] = _signing_key(aws, key)
    for secret in platform.secrets:
        out.secrets[secret.name] = _secret(aws, secret)
    aws.ses.verify_domain_identity(Domain=MAIL_DOMAIN)
    aws.ses.verify_email_identity(EmailAddress=MAIL_FROM)
    _event_bus(aws, platform)
    role_arn = _role(aws)
    out.functions = register_functions(aws.lambda_, platform.functions(), role_arn)
    for schedule in platform.schedules:
        _schedule(aws, schedule, out.functions[schedule.function], role_arn)
    return out


def _table(aws: _Clients, table: Table) -> str:
    name = config.physical_name(table.name)

    def key_schema(pk: str, sk: str | None) -> list[Any]:
        schema = [{"AttributeName": pk, "KeyType": "HASH"}]
        if sk:
            schema.append({"AttributeName": sk, "KeyType": "RANGE"})
        return schema

    spec: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [
            {"AttributeName": attr, "AttributeType": kind}
            for attr, kind in table.attributes().items()
        ],
        "KeySchema": key_schema(
            table.partition_key.name, table.sort_key.name if table.sort_key else None
        ),
    }
    if table.indexes:
        spec["GlobalSecondaryIndexes"] = [
            {
                "IndexName": index.name,
                "KeySchema": key_schema(
                    index.partition_key.name, index.sort_key.name if index.sort_key else None
                ),
                "Projection": {"ProjectionType": "ALL"},
            }
            for index in table.indexes
        ]
    if table.stream:
        spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": table.stream}
    created = _ensure(lambda: (aws.dynamodb.create_table(**spec), True)[1], lambda: False)
    if created and table.ttl_attribute:
        aws.dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )
    return name


def _bucket(aws: _Clients, bucket: Bucket, cors_origins: list[str]) -> str:
    name = config.physical_name(bucket.name)
    _ensure(lambda: aws.s3.create_bucket(Bucket=name), dict)
    if bucket.versioned:
        aws.s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    if bucket.expire_days:
        rule: Any = {
            "ID": "expire",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "Expiration": {"Days": bucket.expire_days},
        }
        aws.s3.put_bucket_lifecycle_configuration(
            Bucket=name, LifecycleConfiguration={"Rules": [rule]}
        )
    if bucket.cors:
        cors: Any = {
            "AllowedOrigins": cors_origins,
            "AllowedMethods": ["GET", "PUT", "POST"],  # as infra_cdk/data/buckets.py
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 3600,
        }
        aws.s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [cors]})
    return name


def _queue(aws: _Clients, queue: Queue) -> tuple[str, str]:
    dlq_name = config.physical_name(queue.dlq_name)
    dlq_url = aws.sqs.create_queue(
        QueueName=dlq_name, Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_S)}
    )["QueueUrl"]
    redrive = {
        "deadLetterTargetArn": config.queue_arn(dlq_name),
        "maxReceiveCount": str(queue.max_receive_count),
    }
    url = aws.sqs.create_queue(
        QueueName=config.physical_name(queue.name),
        Attributes={
            "VisibilityTimeout": str(queue.visibility_timeout_s),
            "MessageRetentionPeriod": str(queue.retention_days * 24 * 3600),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    return dlq_url, url


def _signing_key(aws: _Clients, key: SigningKey) -> str:
    alias = f"alias/{config.physical_name(key.name)}"
    try:
        return aws.kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
    except aws.kms.exceptions.NotFoundException:
        pass
    key_id = aws.kms.create_key(
        KeySpec="ECC_NIST_P256",
        KeyUsage="SIGN_VERIFY",
        Description=f"LinkWithMentor local signing key {key.name}",
    )["KeyMetadata"]["KeyId"]
    aws.kms.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id


def _secret(aws: _Clients, secret: Secret) -> str:
    name = config.physical_name(secret.name)
    spec: dict[str, Any] = {"Name": name, "Description": secret.description}
    if secret.generate:
        spec["SecretString"] = secrets.token_urlsafe(32)
    return _ensure(
        lambda: aws.secretsmanager.create_secret(**spec)["ARN"],
        lambda: aws.secretsmanager.describe_secret(SecretId=name)["ARN"],
    )


def _event_bus(aws: _Clients, platform: Platform) -> None:
    _ensure(lambda: aws.events.create_event_bus(Name=EVENT_BUS), dict)
    for rule in platform.rules:
        name = config.physical_name(rule.name)
        aws.events.put_rule(
            Name=name, EventBusName=EVENT_BUS, EventPattern=json.dumps(dict(rule.pattern))
        )
        queue = config.physical_name(rule.queue)
        aws.events.put_targets(
            Rule=name,
            EventBusName=EVENT_BUS,
            Targets=[
                {"Id": "queue", "Arn": f"arn:aws:sqs:{config.REGION}:{config.ACCOUNT_ID}:{queue}"}
            ],
        )


def _schedule(aws: _Clients, schedule: Schedule, function_arn: str, role_arn: str) -> None:
    # moto stores schedules but never fires them (see docs/local-runtime.md).
    target: Any = {
        "Arn": function_arn,
        "RoleArn": role_arn,
        "Input": json.dumps(dict(schedule.payload)),
    }
    _ensure(
        lambda: aws.scheduler.create_schedule(
            Name=config.physical_name(schedule.name),
            ScheduleExpression=schedule.expression,
            FlexibleTimeWindow={"Mode": "OFF"},
            Target=target,
        ),
        dict,
    )


def _role(aws: _Clients) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "scheduler.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role: dict[str, Any] = _ensure(
        lambda: aws.iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust)),
        lambda: aws.iam.get_role(RoleName=ROLE_NAME),
    )
    return str(role["Role"]["Arn"])


def placeholder_zip() -> bytes:
    """A tiny deployment package: moto needs code, the workers run the repository's."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "Local function: the code runs from the repository.\n")
    return buffer.getvalue()


def register_functions(
    client: LambdaClient, functions: Iterable[Function], role_arn: str
) -> dict[str, str]:
    """Create each function in moto (``client``: boto3 ``lambda``); returns name -> ARN."""
    code = placeholder_zip()
    arns: dict[str, str] = {}
    for fn in functions:
        physical = config.physical_name(fn.name)
        try:
            created = client.create_function(
                FunctionName=physical,
                Runtime=LAMBDA_RUNTIME,
                Role=role_arn,
                Handler=fn.handler,
                Code={"ZipFile": code},
                Description=fn.description[:256],
                Timeout=fn.timeout_s,
                MemorySize=fn.memory_mb,
            )
            arns[fn.name] = created["FunctionArn"]
        except client.exceptions.ResourceConflictException:
            existing = client.get_function(FunctionName=physical)["Configuration"]
            arns[fn.name] = existing["FunctionArn"]
    return arns
