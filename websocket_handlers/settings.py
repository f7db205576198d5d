"""Settings of the WebSocket functions (environment keys come from the declaration)."""

from __future__ import annotations

from pydantic import Field

from lwm_core import constants as c
from lwm_core.settings import CoreSettings


class AuthorizerSettings(CoreSettings):
    """The $connect authorizer: who issues tokens, and the keys that sign them."""

    signing_keys: str = Field(validation_alias=c.ENV_SIGNING_KEY_PREFIX + "ACCESS_TOKEN")


class ConnectionsSettings(CoreSettings):
    """Functions that read or write the connection records."""

    connections_table: str = Field(validation_alias=c.ENV_TABLE_PREFIX + "CONNECTIONS")


class PushSettings(ConnectionsSettings):
    """Functions that also post to connections through @connections."""

    management_url: str = Field(validation_alias=c.ENV_WS_MANAGEMENT_URL)
