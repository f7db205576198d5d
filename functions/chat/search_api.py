"""HTTP route of message search: parse, call the search logic, shape the reply.

``GET /chat/search`` finds messages of the caller's conversations (membership
is read from the chat table on every request). Bad input is a 4xx problem:
``validation_failed`` (missing, too long or unknown parameters, bad ``limit``),
``invalid_query`` (nothing to look for), ``invalid_cursor``, and
``conversation_not_found`` for a conversation the caller is not a member of.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from functions.chat import search
from functions.chat import search_service as svc
from lwm_core.web import CurrentPrincipal, create_app

router = APIRouter()


def _deps() -> search.SearchDeps:
    return svc.deps()


DepsDep = Annotated[search.SearchDeps, Depends(_deps)]
SearchText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=search.MAX_QUERY_CHARS,
        description='Words (all must match), "quoted phrases", -excluded words, OR',
    ),
]
ConversationRef = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Search one conversation only (one you are a member of)",
    ),
]
Limit = Annotated[int, Query(ge=1, le=search.MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]


class SearchHitOut(BaseModel):
    """One message that matched."""

    conversation_id: str
    message_id: str
    author_id: str
    created_at: datetime
    edited_at: datetime | None
    text: str = Field(description="The message text: an HTML-safe fragment without markup")
    highlight: str = Field(
        description="An HTML-safe excerpt whose only markup is <mark> around matches; "
        "… marks text left out"
    )

    @classmethod
    def from_domain(cls, hit: search.SearchHit) -> SearchHitOut:
        return cls(
            conversation_id=hit.conversation_id,
            message_id=hit.message_id,
            author_id=hit.author_id,
            created_at=hit.created_at,
            edited_at=hit.edited_at,
            text=hit.text,
            highlight=hit.highlight,
        )


class SearchPageOut(BaseModel):
    """A page of hits, best match first, then newest; ``next_cursor`` continues it."""

    items: list[SearchHitOut]
    next_cursor: str | None


@router.get("/chat/search", tags=["chat search"])
def handle_search_messages(
    user: CurrentPrincipal,
    deps: DepsDep,
    q: SearchText,
    conversation_id: ConversationRef = None,
    limit: Limit = search.DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> SearchPageOut:
    """Full-text search over the messages of the conversations you are a member of."""
    params = search.SearchParams(q, conversation_id, limit, cursor)
    page = search.search_messages(deps, user.user_id, params)
    return SearchPageOut(
        items=[SearchHitOut.from_domain(h) for h in page.items], next_cursor=page.next_cursor
    )


app = create_app(
    title="LinkWithMentor chat search API",
    version="1.0.0",
    description="Full-text search over the messages of the caller's conversations.",
    routers=[router],
)
