"""S3 buckets, one per ``blueprint`` Bucket, plus the bucket their access logs go to."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, Stack
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from blueprint.model import Bucket
from infra_cdk.config import StageConfig

_ACCESS_LOG_DAYS = 365


def bucket_export(config: StageConfig, bucket: Bucket, attribute: str) -> str:
    """The export name of a bucket's ``arn`` or ``name``, e.g. ``lwm-dev-bucket-uploads-arn``.

    The Api stack imports buckets by these names: IAM findings then name the
    export (stable) instead of a CDK-generated one (a hash of construct paths).
    """
    return f"{config.prefix}-bucket-{bucket.name}-{attribute}"


class BucketsConstruct(Construct):
    """Private, KMS-encrypted, TLS-only buckets that log access to a dedicated log bucket."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StageConfig,
        buckets: Sequence[Bucket],
        key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.access_logs: s3.Bucket | None = self._build_log_bucket(config) if buckets else None
        self.buckets: dict[str, s3.Bucket] = {}
        for bucket in buckets:
            resource = self._build_bucket(bucket, config, key)
            stack = Stack.of(self)
            stack.export_value(resource.bucket_arn, name=bucket_export(config, bucket, "arn"))
            stack.export_value(resource.bucket_name, name=bucket_export(config, bucket, "name"))
            self.buckets[bucket.name] = resource

    def _build_log_bucket(self, config: StageConfig) -> s3.Bucket:
        # No access logging of its own (it would loop); cdk-nag recognizes log buckets.
        return s3.Bucket(
            self,
            "AccessLogs",
            # Server access log delivery supports SSE-S3 only, not SSE-KMS.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(_ACCESS_LOG_DAYS))],
            removal_policy=config.removal_policy,
            auto_delete_objects=not config.is_prod,
        )

    def _build_bucket(self, bucket: Bucket, config: StageConfig, key: kms.IKey) -> s3.Bucket:
        return s3.Bucket(
            self,
            bucket.name,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=key,
            bucket_key_enabled=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            minimum_tls_version=1.2,
            versioned=bucket.versioned,
            lifecycle_rules=(
                [s3.LifecycleRule(expiration=Duration.days(bucket.expire_days))]
                if bucket.expire_days
                else None
            ),
            cors=self._cors(config) if bucket.cors else None,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{bucket.name}/",
            removal_policy=config.removal_policy,
            auto_delete_objects=not config.is_prod,
        )

    @staticmethod
    def _cors(config: StageConfig) -> list[s3.CorsRule]:
        # Browsers upload and download with presigned URLs; the signature is the authorization.
        return [
            s3.CorsRule(
                allowed_methods=[s3.HttpMethods.GET, s3.HttpMethods.PUT, s3.HttpMethods.POST],
                allowed_origins=list(config.cors_origins),
                allowed_headers=["*"],
                exposed_headers=["ETag"],
                max_age=3600,
            )
        ]
