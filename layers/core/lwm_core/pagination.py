"""Opaque cursors for keyset pagination.

A cursor is the last row's sort key, JSON-encoded, versioned and base64url'd.
Clients must treat it as opaque; anything we did not issue is a 400.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from lwm_core.errors import InvalidCursorError

_VERSION = 1
T = TypeVar("T")

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def encode_cursor(scope: str, position: Sequence[str | int | None]) -> str:
    """Encode ``position`` (the last row's sort key) for listing ``scope``."""
    raw = json.dumps([_VERSION, scope, list(position)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, scope: str, arity: int) -> list[str | int | None]:
    """Decode a cursor issued by :func:`encode_cursor` for ``scope``.

    Raises:
        InvalidCursorError: the cursor is malformed, from another listing or another version.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        version, cursor_scope, position = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as e:
        raise InvalidCursorError("cursor is not one this API issued") from e
    if version != _VERSION or cursor_scope != scope or not isinstance(position, list):
        raise InvalidCursorError("cursor belongs to another listing")
    if len(position) != arity or not all(isinstance(p, str | int | None) for p in position):
        raise InvalidCursorError("cursor is not one this API issued")
    return position


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of results and the cursor of the next page, if any."""

    items: list[T]
    next_cursor: str | None
