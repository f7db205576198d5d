"""Local physical names and URLs for ``blueprint.environment.environment_for``."""

from __future__ import annotations

from collections.abc import Mapping

from blueprint.model import Bucket, Queue, Secret, SigningKey, Table
from local_runtime import config
from local_runtime.aws import Provisioned
from lwm_core import constants as c


class LocalResolver:
    """Implements :class:`blueprint.environment.Resolver` for the local runtime."""

    def __init__(
        self,
        resources: Provisioned,
        *,
        aws_endpoint: str,
        http_api: str,
        database_url: str | None,
        websocket_management: str = "",
    ) -> None:
        self.resources = resources
        self.aws_endpoint = aws_endpoint
        self.http_api = http_api
        self.database_url = database_url
        self.websocket_management = websocket_management

    @property
    def issuer(self) -> str:
        """The access tokens' issuer: the local HTTP API, which serves the JWKS."""
        return self.http_api

    @property
    def audience(self) -> str:
        return config.AUDIENCE

    def table_name(self, table: Table) -> str:
        return self.resources.tables[table.name]

    def bucket_name(self, bucket: Bucket) -> str:
        return self.resources.buckets[bucket.name]

    def queue_url(self, queue: Queue) -> str:
        return self.resources.queues[queue.name]

    def signing_key_id(self, key: SigningKey) -> str:
        return self.resources.signing_keys[key.name]

    def secret_arn(self, secret: Secret) -> str:
        return self.resources.secrets[secret.name]

    def websocket_management_url(self) -> str:
        """The ``@connections`` endpoint: the local WebSocket API's port, over HTTP."""
        return self.websocket_management

    def database_environment(self) -> Mapping[str, str]:
        return {c.ENV_DATABASE_URL: self.database_url} if self.database_url else {}

    def common_environment(self) -> Mapping[str, str]:
        return {
            c.ENV_STAGE: config.STAGE,
            c.ENV_ISSUER: self.issuer,
            c.ENV_AUDIENCE: self.audience,
            c.ENV_PUBLIC_BASE_URL: self.http_api,
            c.ENV_AWS_ENDPOINT: self.aws_endpoint,
            c.ENV_EVENT_BUS: self.resources.event_bus,
            c.ENV_MAIL_FROM: self.resources.mail_from,
        }
