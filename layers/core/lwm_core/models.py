"""Request models shared by the REST apps and the socket handlers (pydantic only, no web stack).

A socket function validates its actions with the same rules as a REST body
without importing FastAPI (which costs a cold start about as much again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


def _unstorable(value: object) -> bool:
    """Text no store can keep: NUL characters (PostgreSQL refuses them) or lone surrogates
    (not encodable as UTF-8), anywhere in a JSON value."""
    if isinstance(value, str):
        if "\x00" in value:
            return True
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_unstorable(k) or _unstorable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_unstorable(v) for v in value)
    return False


def trim(min_length: int = 0) -> Callable[[str], str]:
    """An after-validator: strip surrounding whitespace, then keep ``min_length`` characters.

    Length limits apply to the text as sent (so the contract's ``maxLength`` is exact);
    the stored value is the trimmed one.
    """

    def trimmed(value: str) -> str:
        value = value.strip()
        if len(value) < min_length:
            raise ValueError(f"needs at least {min_length} characters besides spaces")
        return value

    return trimmed


class StrictModel(BaseModel):
    """Request bodies: unknown fields are an error, not silently dropped; text is storable.

    Nothing is trimmed or case-folded unless a field says so (``trim``), so that what
    the OpenAPI document allows is exactly what is accepted.
    """

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        if _unstorable(data):
            raise ValueError("text must not contain NUL characters or unpaired surrogates")
        return data
