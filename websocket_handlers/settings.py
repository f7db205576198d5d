"""Settings of the WebSocket functions (environment keys come from the declaration)."""

from __future__ import annotations

from pydantic import Field

from lwm_core import constants as c
from lwm_core.settings import ConnectionsSettings, CoreSettings, PushSettings

__all__ = ["AuthorizerSettings", "ConnectionsSettings", "PushSettings"]


class AuthorizerSettings(CoreSettings):
    """The $connect authorizer: who issues tokens, and the keys that sign them."""

    signing_keys: str = Field(validation_alias=c.ENV_SIGNING_KEY_PREFIX + "ACCESS_TOKEN")
