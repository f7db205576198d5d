"""Wiring of the chat functions: settings and adapters, built once per sandbox (lazily)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from functions.chat.logic import Deps

if TYPE_CHECKING:
    from functions.chat.delivery import Delivery
    from functions.chat.settings import ChatFunctionSettings


@cache
def settings() -> ChatFunctionSettings:
    """The function's settings, read and validated once per sandbox."""
    from functions.chat.settings import ChatFunctionSettings

    return ChatFunctionSettings()


@cache
def deps() -> Deps:
    """The chat logic's collaborators, real adapters (DynamoDB, S3)."""
    from functions.chat.attachments import S3AttachmentStore
    from functions.chat.data import DynamoChatUow, bind_table

    s = settings()
    bind_table(s.chat_table, s.aws_region, s.aws_endpoint_url)
    return Deps(uow=DynamoChatUow, attachments=S3AttachmentStore(s.attachments_bucket))


@cache
def delivery() -> Delivery:
    """Live delivery to members' devices over the WebSocket API."""
    from functions.chat.delivery import Delivery
    from lwm_core.push import sandbox_pusher

    return Delivery(deps(), sandbox_pusher())
