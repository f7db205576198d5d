"""Settings of the chat function (environment keys come from the declaration)."""

from __future__ import annotations

from pydantic import Field

from lwm_core import constants as c
from lwm_core.settings import CoreSettings


class ChatFunctionSettings(CoreSettings):
    """Everything the chat function reads from its environment."""

    chat_table: str = Field(validation_alias=c.ENV_TABLE_PREFIX + "CHAT")
    event_bus: str = Field(validation_alias=c.ENV_EVENT_BUS)
