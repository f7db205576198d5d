"""Settings of the users function (environment keys come from the declaration)."""

from __future__ import annotations

from pydantic import Field

from lwm_core import constants as c
from lwm_core.settings import CoreSettings, DatabaseSettings, MailSettings, RateLimitSettings


class UsersSettings(CoreSettings, DatabaseSettings, MailSettings, RateLimitSettings):
    """Everything the users function reads from its environment."""

    auth_table: str = Field(validation_alias=c.ENV_TABLE_PREFIX + "AUTH")
    rate_limit_table: str = Field(validation_alias=c.ENV_TABLE_PREFIX + "RATE_LIMITS")
    signing_keys: str = Field(validation_alias=c.ENV_SIGNING_KEY_PREFIX + "ACCESS_TOKEN")
    oidc_providers_secret: str | None = Field(
        None, validation_alias=c.ENV_SECRET_PREFIX + "OIDC_PROVIDERS"
    )
