"""Wiring of message search (``chat-search`` and ``chat-search-indexer``), once per sandbox.

Settings and adapters are built lazily on first use, so a cold start pays only
for what the invocation needs (the indexer never builds a DynamoDB client).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from functions.chat.search import SearchDeps

if TYPE_CHECKING:
    from functions.chat.search_settings import ChatSearchIndexerSettings, ChatSearchSettings
    from functions.chat.search_store import PostgresSearchUow


@cache
def settings() -> ChatSearchSettings:
    """The search function's settings, read and validated once per sandbox."""
    from functions.chat.search_settings import ChatSearchSettings

    return ChatSearchSettings()


@cache
def deps() -> SearchDeps:
    """The search logic's collaborators: the index in PostgreSQL, memberships in DynamoDB."""
    from functions.chat.search_store import DynamoMemberships, PostgresSearchUow, dynamodb_client
    from lwm_core.db import database_url

    s = settings()
    url = database_url(s)
    client = dynamodb_client(s.aws_region, s.aws_endpoint_url)
    return SearchDeps(
        uow=lambda: PostgresSearchUow(url),
        memberships=DynamoMemberships(client, s.chat_table),
    )


@cache
def indexer_settings() -> ChatSearchIndexerSettings:
    """The indexer's settings, read and validated once per sandbox."""
    from functions.chat.search_settings import ChatSearchIndexerSettings

    return ChatSearchIndexerSettings()


@cache
def indexer_url() -> str:
    """The indexer's database URL (in AWS, resolved from the secret once per sandbox)."""
    from lwm_core.db import database_url

    return database_url(indexer_settings())


def index_uow() -> PostgresSearchUow:
    """A fresh unit of work over the index, for one stream record."""
    from functions.chat.search_store import PostgresSearchUow

    return PostgresSearchUow(indexer_url())
