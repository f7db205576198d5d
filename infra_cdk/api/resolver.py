"""The CDK implementation of ``blueprint.environment.Resolver``: names are CloudFormation tokens."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Fn

from blueprint.model import Bucket, Queue, Secret, SigningKey, Table
from infra_cdk.config import StageConfig
from infra_cdk.data.buckets import bucket_export
from infra_cdk.data.stack import DataStack
from infra_cdk.data.tables import table_name
from lwm_core import constants as c


class CdkResolver:
    """Physical names, URLs and ARNs of the Data stack's resources, as tokens."""

    def __init__(
        self,
        data: DataStack,
        *,
        config: StageConfig,
        issuer: str,
        websocket_management_url: str | None = None,
    ) -> None:
        self._data = data
        self._config = config
        self._websocket_management_url = websocket_management_url
        self._common = {
            c.ENV_STAGE: config.stage,
            c.ENV_ISSUER: issuer,
            c.ENV_AUDIENCE: config.audience,
            c.ENV_EVENT_BUS: data.events.bus.event_bus_name,
            c.ENV_MAIL_FROM: config.mail_from,
        }

    def table_name(self, table: Table) -> str:
        return table_name(self._config, table)

    def bucket_name(self, bucket: Bucket) -> str:
        return Fn.import_value(bucket_export(self._config, bucket, "name"))

    def queue_url(self, queue: Queue) -> str:
        return self._data.queues.queues[queue.name].queue_url

    def signing_key_id(self, key: SigningKey) -> str:
        return self._data.signing_keys.keys[key.name].key_arn

    def secret_arn(self, secret: Secret) -> str:
        return self._data.secrets.secrets[secret.name].secret_arn

    def database_environment(self) -> Mapping[str, str]:
        database = self._data.database
        return {
            c.ENV_DATABASE_HOST: database.proxy.endpoint,
            c.ENV_DATABASE_NAME: database.database_name,
            c.ENV_DATABASE_SECRET_ARN: database.secret.secret_arn,
        }

    def websocket_management_url(self) -> str:
        """The WebSocket stage's ``@connections`` endpoint (``https://{apiId}.execute-api…/{stage}``)."""
        if self._websocket_management_url is None:
            raise LookupError("a function manages WebSocket connections, but no API was built")
        return self._websocket_management_url

    def common_environment(self) -> Mapping[str, str]:
        return self._common
