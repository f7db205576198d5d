"""Asymmetric KMS keys whose private half never leaves KMS (e.g. the access-token key)."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Duration
from aws_cdk import aws_kms as kms
from constructs import Construct

from blueprint.model import SigningKey
from infra_cdk.config import StageConfig


class SigningKeysConstruct(Construct):
    """One ECC_NIST_P256 SIGN_VERIFY key with an alias per ``blueprint`` SigningKey."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        keys: Iterable[SigningKey],
    ) -> None:
        super().__init__(scope, construct_id)
        self.keys: dict[str, kms.Key] = {k.name: self._build_key(k, config) for k in keys}

    def _build_key(self, key: SigningKey, config: StageConfig) -> kms.Key:
        # Asymmetric keys cannot rotate automatically: a new key (and a JWKS with both
        # public keys during the overlap) is the rotation, see docs/infra.md.
        return kms.Key(
            self,
            key.name,
            description=f"LinkWithMentor {config.stage}: {key.name} signing key",
            alias=f"alias/{config.prefix}/{key.name}",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            removal_policy=config.removal_policy,
            pending_window=Duration.days(30 if config.is_prod else 7),
        )
