"""Opaque keyset cursors (``lwm_core.pagination``)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lwm_core.errors import InvalidCursorError
from lwm_core.pagination import decode_cursor, encode_cursor

positions = st.lists(st.one_of(st.text(), st.integers(), st.none()), max_size=4)


def _raw(obj: object) -> str:
    """A cursor-shaped string of any JSON, as a forger would build one."""
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_round_trip() -> None:
    # Given the last row's sort key of a listing
    # When it is encoded and decoded for the same listing
    cursor = encode_cursor("mentors:newest", ["2030-01-01T00:00:00+00:00", "01HXYZ"])
    # Then the cursor is URL-safe text without padding, and decodes to the same key
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor, "mentors:newest", 2) == ["2030-01-01T00:00:00+00:00", "01HXYZ"]


@given(scope=st.text(), position=positions)
def test_any_position_round_trips(scope: str, position: list[str | int | None]) -> None:
    # Given any scope and any position of strings, integers and nulls
    # When it is encoded and decoded for the same scope and arity
    cursor = encode_cursor(scope, position)
    # Then the same position comes back, and the cursor is ASCII
    assert decode_cursor(cursor, scope, len(position)) == position
    assert cursor.isascii()


@given(scope=st.text(), other=st.text(), position=positions)
def test_a_cursor_belongs_to_its_listing(
    scope: str, other: str, position: list[str | int | None]
) -> None:
    # Given a cursor of one listing
    cursor = encode_cursor(scope, position)
    # When it is decoded for another listing, or with another arity
    # Then InvalidCursorError
    if other != scope:
        with pytest.raises(InvalidCursorError):
            decode_cursor(cursor, other, len(position))
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, scope, len(position) + 1)


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "!!!!",
        "é",  # not ASCII
        "A",  # not a whole base64 quantum
        _raw(5),
        _raw("abc"),
        _raw({"a": 1, "b": 2, "c": 3}),
        _raw([1, "users"]),  # too short
        _raw([2, "users", ["01H"]]),  # another version
        _raw([1, "users", "01H"]),  # position not a list
        _raw([1, "users", [1.5]]),  # floats are never issued
        _raw([1, "users", [["nested"]]]),
        _raw([1, "users", [{"k": "v"}]]),
        base64.urlsafe_b64encode(b"\xff\xfe\x00").decode(),  # not UTF-8
    ],
)
def test_garbage_is_an_invalid_cursor(cursor: str) -> None:
    # Given something the API did not issue
    # When it is decoded as a users cursor
    # Then InvalidCursorError (a 400 with a stable code), never another exception
    with pytest.raises(InvalidCursorError) as caught:
        decode_cursor(cursor, "users", 1)
    assert (caught.value.status, caught.value.code) == (400, "invalid_cursor")


@given(cursor=st.text(max_size=60))
def test_no_text_makes_decoding_crash(cursor: str) -> None:
    # Given any text at all
    # When it is decoded
    # Then it is a position or InvalidCursorError, nothing else
    try:
        position = decode_cursor(cursor, "users", 1)
    except InvalidCursorError:
        return
    assert len(position) == 1
