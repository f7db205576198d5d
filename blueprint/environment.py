"""The environment a function runs with, computed the same way for AWS and locally.

The CDK app and the local runtime each implement :class:`Resolver` (physical
names from CloudFormation tokens, or local names and URLs); this module decides
which keys a function gets from the permissions it declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from blueprint.model import Bucket, Function, Platform, Queue, Secret, SigningKey, Table
from lwm_core import constants as c

METRICS_NAMESPACE = "LinkWithMentor"


class Resolver(Protocol):
    """Turns declared resources into the physical names a runtime knows."""

    def table_name(self, table: Table) -> str: ...
    def bucket_name(self, bucket: Bucket) -> str: ...
    def queue_url(self, queue: Queue) -> str: ...
    def signing_key_id(self, key: SigningKey) -> str: ...
    def secret_arn(self, secret: Secret) -> str: ...
    def database_environment(self) -> Mapping[str, str]: ...
    def websocket_management_url(self) -> str: ...
    def common_environment(self) -> Mapping[str, str]: ...


def static_environment(fn: Function) -> dict[str, str]:
    """The variables of ``fn`` that depend on no deployed resource (benchmarks use them too)."""
    return {
        "POWERTOOLS_SERVICE_NAME": fn.name,
        "POWERTOOLS_METRICS_NAMESPACE": METRICS_NAMESPACE,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        # No pydantic plugin is used; without this every cold start scans the entry
        # points of every installed distribution looking for one.
        "PYDANTIC_DISABLE_PLUGINS": "__all__",
    }


def environment_for(platform: Platform, fn: Function, resolver: Resolver) -> dict[str, str]:
    """Every environment variable ``fn`` runs with, in AWS or locally."""
    env = static_environment(fn)
    env.update(resolver.common_environment())
    for access in fn.access:
        if access.kind == "table":
            table = platform.table(access.name)
            env[table.env_key] = resolver.table_name(table)
        elif access.kind == "bucket":
            bucket = platform.bucket(access.name)
            env[bucket.env_key] = resolver.bucket_name(bucket)
        elif access.kind == "queue":
            queue = platform.queue(access.name)
            env[queue.env_key] = resolver.queue_url(queue)
        elif access.kind == "signing_key":
            key = platform.signing_key(access.name)
            env[key.env_key] = resolver.signing_key_id(key)
        elif access.kind == "secret":
            secret = platform.secret(access.name)
            env[secret.env_key] = resolver.secret_arn(secret)
        elif access.kind == "database":
            env.update(resolver.database_environment())
        elif access.kind == "websocket":
            env[c.ENV_WS_MANAGEMENT_URL] = resolver.websocket_management_url()
    env.update(fn.environment)
    return env
