"""The two ASGI chores the local servers share: reading a bounded body, sending a response."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]


class BodyTooLargeError(Exception):
    """The request body is longer than the server accepts."""


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` lower-case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body.

    Raises:
        BodyTooLargeError: when it is (or announces itself) longer than ``limit`` bytes;
            a declared ``Content-Length`` is refused before anything is read.
    """
    declared = header(scope, b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # client went away
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def respond(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    """Send a complete response with its ``content-length``."""
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
