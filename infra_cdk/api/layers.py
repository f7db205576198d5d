"""The two Lambda layers every function uses: shared core code and locked dependencies."""

from __future__ import annotations

from aws_cdk import AssetHashType
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra_cdk import bundling
from infra_cdk.config import LAMBDA_ARCHITECTURE, LAMBDA_RUNTIME, StageConfig, python_version


def _code(asset: bundling.StagedAsset) -> lambda_.Code:
    # The staged folder is named by its content hash already: no second fingerprint pass.
    return lambda_.Code.from_asset(
        str(asset.path), asset_hash=asset.digest, asset_hash_type=AssetHashType.CUSTOM
    )


class LayersConstruct(Construct):
    """``core`` (``layers/core`` at ``python/``) and ``dependencies`` (``uv.lock``, arm64)."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StageConfig) -> None:
        super().__init__(scope, construct_id)
        self.core = self._build_layer(
            "Core",
            bundling.core_layer(),
            f"{config.prefix}: lwm_core, the shared platform code",
        )
        self.dependencies = self._build_layer(
            "Dependencies",
            bundling.dependency_layer(python_version(LAMBDA_RUNTIME)),
            f"{config.prefix}: runtime dependencies from uv.lock",
        )

    @property
    def all(self) -> list[lambda_.ILayerVersion]:
        return [self.dependencies, self.core]

    def _build_layer(
        self, construct_id: str, asset: bundling.StagedAsset, description: str
    ) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            construct_id,
            code=_code(asset),
            description=description,
            compatible_runtimes=[LAMBDA_RUNTIME],
            compatible_architectures=[LAMBDA_ARCHITECTURE],
        )


def function_code(asset: bundling.StagedAsset) -> lambda_.Code:
    """``Code`` for a staged function folder."""
    return _code(asset)
