"""Settings of the message search functions (environment keys come from the declaration)."""

from __future__ import annotations

from pydantic import Field

from lwm_core import constants as c
from lwm_core.settings import CoreSettings, DatabaseSettings


class ChatSearchSettings(CoreSettings, DatabaseSettings):
    """What ``chat-search`` reads: the chat table (memberships) and PostgreSQL (the index)."""

    chat_table: str = Field(validation_alias=c.ENV_TABLE_PREFIX + "CHAT")


class ChatSearchIndexerSettings(CoreSettings, DatabaseSettings):
    """What ``chat-search-indexer`` reads: PostgreSQL only (its input is the table's stream)."""
