"""Settings read from the environment once per sandbox, validated at cold start.

Each function builds one settings class from these mixins; logic receives the
values, never ``os.environ``.
"""

from __future__ import annotations

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lwm_core import constants as c


class _Base(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class CoreSettings(_Base):
    """What every function needs: stage, token issuer and audience, AWS endpoint."""

    stage: str = Field("local", validation_alias=c.ENV_STAGE)
    issuer: str = Field(validation_alias=c.ENV_ISSUER)
    audience: str = Field(c.TOKEN_AUDIENCE, validation_alias=c.ENV_AUDIENCE)
    public_base_url: str | None = Field(None, validation_alias=c.ENV_PUBLIC_BASE_URL)
    aws_region: str = Field("us-east-1", validation_alias="AWS_REGION")
    aws_endpoint_url: str | None = Field(None, validation_alias=c.ENV_AWS_ENDPOINT)

    @property
    def base_url(self) -> str:
        """The public base URL of the REST API (links in emails point here)."""
        return (self.public_base_url or self.issuer).rstrip("/")


class DatabaseSettings(_Base):
    """PostgreSQL: a URL locally, or the RDS Proxy host plus a credentials secret in AWS."""

    database_url: str | None = Field(None, validation_alias=c.ENV_DATABASE_URL)
    database_host: str | None = Field(None, validation_alias=c.ENV_DATABASE_HOST)
    database_name: str = Field("lwm", validation_alias=c.ENV_DATABASE_NAME)
    database_secret_arn: str | None = Field(None, validation_alias=c.ENV_DATABASE_SECRET_ARN)
    aws_region: str = Field("us-east-1", validation_alias="AWS_REGION")  # IAM tokens for the proxy

    @model_validator(mode="after")
    def _one_way_to_connect(self) -> DatabaseSettings:
        if not self.database_url and not (self.database_host and self.database_secret_arn):
            needed = f"{c.ENV_DATABASE_HOST} and {c.ENV_DATABASE_SECRET_ARN}"
            raise ValueError(f"set {c.ENV_DATABASE_URL}, or {needed}")
        return self


class RateLimitSettings(_Base):
    """Overrides of a function's rate limits: JSON ``{"limit-name": [max_hits, window_s]}``.

    Operators tune limits per stage without a code change; the test stack raises
    the per-client ones, since every test client shares one source address.
    """

    rate_limits: dict[str, tuple[int, int]] = Field(
        default_factory=dict, validation_alias=c.ENV_RATE_LIMITS
    )


class MailSettings(_Base):
    """The sender address of platform email (an SES verified identity)."""

    mail_from: str = Field("no-reply@linkwithmentor.local", validation_alias=c.ENV_MAIL_FROM)


class ConnectionsSettings(CoreSettings):
    """Functions that read or write the WebSocket connection records."""

    connections_table: str = Field(validation_alias=c.ENV_TABLE_PREFIX + "CONNECTIONS")


class PushSettings(ConnectionsSettings):
    """Functions that also post to connections through ``@connections``."""

    management_url: str = Field(validation_alias=c.ENV_WS_MANAGEMENT_URL)
