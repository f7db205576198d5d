"""Settings of the chat functions (environment keys come from the declaration)."""

from __future__ import annotations

from pydantic import Field

from lwm_core import constants as c
from lwm_core.settings import CoreSettings, PushSettings


class ChatFunctionSettings(PushSettings):
    """What the chat REST and socket functions read from their environment."""

    chat_table: str = Field(validation_alias=c.ENV_TABLE_PREFIX + "CHAT")
    attachments_bucket: str = Field(validation_alias=c.ENV_BUCKET_PREFIX + "CHAT_ATTACHMENTS")


class ChatEventsSettings(CoreSettings):
    """The outbox relay: the bus the chat events go to, and the chat table."""

    event_bus: str = Field(validation_alias=c.ENV_EVENT_BUS)
    chat_table: str = Field(validation_alias=c.ENV_TABLE_PREFIX + "CHAT")
