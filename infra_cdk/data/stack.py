"""The stateful stack: everything that holds data or outlives a code deploy."""

from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from blueprint.model import Platform
from infra_cdk.config import StageConfig
from infra_cdk.data.buckets import BucketsConstruct
from infra_cdk.data.database import DatabaseConstruct
from infra_cdk.data.encryption import EncryptionConstruct
from infra_cdk.data.events import EventBusConstruct
from infra_cdk.data.network import NetworkConstruct
from infra_cdk.data.queues import QueuesConstruct
from infra_cdk.data.secrets import SecretsConstruct
from infra_cdk.data.signing_keys import SigningKeysConstruct
from infra_cdk.data.tables import TablesConstruct


class DataStack(Stack):
    """``Lwm-<stage>-Data``: keys, tables, buckets, queues, secrets, VPC, Aurora, event bus."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        platform: Platform,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        key = EncryptionConstruct(self, "Encryption", config=config).data_key
        self.data_key = key
        self.tables = TablesConstruct(
            self, "Tables", config=config, tables=platform.tables, key=key
        )
        self.buckets = BucketsConstruct(
            self, "Buckets", config=config, buckets=platform.buckets, key=key
        )
        self.queues = QueuesConstruct(
            self, "Queues", config=config, queues=platform.queues, key=key
        )
        self.signing_keys = SigningKeysConstruct(
            self, "SigningKeys", config=config, keys=platform.signing_keys
        )
        self.secrets = SecretsConstruct(
            self, "Secrets", config=config, secrets=platform.secrets, key=key
        )
        self.network = NetworkConstruct(self, "Network", config=config)
        self.database = DatabaseConstruct(
            self, "Database", config=config, network=self.network, key=key
        )
        self.events = EventBusConstruct(
            self,
            "Events",
            config=config,
            rules=platform.rules,
            queues=self.queues.queues,
            dead_letter_queues=self.queues.dead_letter_queues,
        )
        CfnOutput(self, "DatabaseProxyEndpoint", value=self.database.proxy.endpoint)
        CfnOutput(self, "EventBusName", value=self.events.bus.event_bus_name)
