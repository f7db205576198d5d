"""Secrets Manager secrets, one per ``blueprint`` Secret."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import SecretValue
from aws_cdk import aws_kms as kms
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from blueprint.model import Secret
from infra_cdk.config import StageConfig
from infra_cdk.nag import acknowledge


class SecretsConstruct(Construct):
    """Secrets encrypted with the data key: random when ``generate``, else ``{}`` to fill."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        secrets: Iterable[Secret],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.secrets: dict[str, secretsmanager.Secret] = {
            s.name: self._build_secret(s, config, key) for s in secrets
        }

    def _build_secret(
        self, secret: Secret, config: StageConfig, key: kms.IKey
    ) -> secretsmanager.Secret:
        resource = secretsmanager.Secret(
            self,
            secret.name,
            description=f"LinkWithMentor {config.stage}: {secret.description}",
            encryption_key=key,
            generate_secret_string=(
                secretsmanager.SecretStringGenerator(password_length=64, exclude_punctuation=True)
                if secret.generate
                else None
            ),
            # An operator-filled secret starts as an empty JSON object, never a random string
            # that the function would try to parse.
            secret_string_value=None if secret.generate else SecretValue.unsafe_plain_text("{}"),
            removal_policy=config.removal_policy,
        )
        acknowledge(
            resource,
            "SMG4",
            "Application secret: its value is set by the operator (or is a random key that "
            "invalidates sessions when changed); no rotation Lambda can produce a valid new value.",
        )
        return resource
