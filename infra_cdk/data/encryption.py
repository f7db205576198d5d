"""The customer-managed key that encrypts the platform's data at rest."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from constructs import Construct

from infra_cdk.config import StageConfig


class EncryptionConstruct(Construct):
    """One symmetric data key (rotation on) for tables, queues, buckets, secrets and Aurora."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.data_key = self._build_data_key(config)

    def _build_data_key(self, config: StageConfig) -> kms.Key:
        return kms.Key(
            self,
            "DataKey",
            description=f"LinkWithMentor {config.stage}: encrypts data at rest",
            alias=f"alias/{config.prefix}/data",
            enable_key_rotation=True,
            rotation_period=Duration.days(365),
            removal_policy=config.removal_policy,
            pending_window=Duration.days(30 if config.is_prod else 7),
        )
