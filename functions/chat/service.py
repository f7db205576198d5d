"""Wiring of the chat service: settings and adapters, built once per sandbox (lazily)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING

from functions.chat.domain import Event
from functions.chat.logic import Deps

if TYPE_CHECKING:
    from functions.chat.settings import ChatFunctionSettings
    from lwm_core.events import EventPublisher

EVENT_SOURCE = "lwm.chat"


@cache
def settings() -> ChatFunctionSettings:
    """The function's settings, read and validated once per sandbox."""
    from functions.chat.settings import ChatFunctionSettings

    return ChatFunctionSettings()


@cache
def deps() -> Deps:
    """The chat logic's collaborators, real adapters (DynamoDB)."""
    from functions.chat.data import DynamoChatUow, bind_table

    s = settings()
    bind_table(s.chat_table, s.aws_region, s.aws_endpoint_url)
    return Deps(uow=DynamoChatUow)


@cache
def publisher() -> EventPublisher:
    from lwm_core.events import EventPublisher

    return EventPublisher(EVENT_SOURCE, settings().event_bus)


def publish(events: Sequence[Event]) -> None:
    """Publish committed domain events to the platform bus (moderation, notifications)."""
    if events:
        publisher().publish(events)
