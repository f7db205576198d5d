"""Lambda's Invoke API (``POST /2015-03-31/functions/{name}/invocations``) over the local workers.

boto3's ``lambda`` client, pointed at this endpoint, invokes a warm local
function exactly as it would in AWS: ``RequestResponse``, ``Event`` and
``DryRun`` invocation types, ``Tail`` logs, client context, the
``X-Amz-Function-Error`` header and AWS's error documents. The moto seam
(:mod:`local_runtime.lambda_seam`) reaches the workers through it too.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import re
from collections.abc import Coroutine

from starlette.types import Receive, Scope, Send

from local_runtime import config
from local_runtime.asgi import BodyTooLargeError, Headers, header, read_body, respond
from local_runtime.workers import (
    InvokeRequest,
    InvokeResult,
    LambdaRuntime,
    RuntimeStoppedError,
)

log = logging.getLogger("local_runtime.invoke")

_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations$")
_JSON = (b"content-type", b"application/json")
_TAIL_BYTES = 4096  # Lambda returns the last 4 KB of the logs
_EVENT_PAYLOAD_LIMIT = 1024 * 1024  # asynchronous invocations


class LambdaInvokeApi:
    """An ASGI app serving Lambda's Invoke operation for every declared function."""

    def __init__(self, runtime: LambdaRuntime) -> None:
        self._runtime = runtime
        self._background: set[asyncio.Task[None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        match = _PATH.match(scope["path"])
        if match is None or scope["method"] != "POST":
            await _error(send, 404, "UnknownOperationException", "Unknown operation")
            return
        name = match["name"]
        fn = self._runtime.find(name)
        if fn is None:
            arn = name if name.startswith("arn:") else config.function_arn(name)
            await _error(send, 404, "ResourceNotFoundException", f"Function not found: {arn}")
            return

        invocation_type = header(scope, b"x-amz-invocation-type") or "RequestResponse"
        limit = (
            _EVENT_PAYLOAD_LIMIT
            if invocation_type == "Event"
            else config.LAMBDA_SYNC_PAYLOAD_LIMIT_BYTES
        )
        try:
            payload = await read_body(scope, receive, limit) or b"{}"
        except BodyTooLargeError:
            await _error(
                send,
                413,
                "RequestTooLargeException",
                f"Request must be smaller than {limit} bytes for the InvokeFunction operation",
            )
            return
        try:
            json.loads(payload)
            client_context = _client_context(header(scope, b"x-amz-client-context"))
        except (ValueError, binascii.Error):
            await _error(
                send,
                400,
                "InvalidRequestContentException",
                "Could not parse request body into json",
            )
            return

        request = InvokeRequest(payload, client_context=client_context)
        common: Headers = [(b"x-amzn-requestid", request.request_id.encode())]
        if invocation_type == "DryRun":
            await respond(send, 204, common)
            return
        if invocation_type == "Event":
            self._in_background(fn.name, self._runtime.invoke(fn, request))
            await respond(send, 202, common)
            return

        try:
            result = await self._runtime.invoke(fn, request)
        except RuntimeStoppedError as e:
            await _error(send, 503, "ServiceException", str(e))
            return
        headers = [*common, _JSON, (b"x-amz-executed-version", b"$LATEST")]
        if result.function_error:
            headers.append((b"x-amz-function-error", b"Unhandled"))
        if (header(scope, b"x-amz-log-type") or "").lower() == "tail":
            tail = result.logs.encode()[-_TAIL_BYTES:]
            headers.append((b"x-amz-log-result", base64.b64encode(tail)))
        await respond(send, 200, headers, result.payload)

    def _in_background(
        self, name: str, invocation: Coroutine[object, object, InvokeResult]
    ) -> None:
        async def run() -> None:
            try:
                result = await invocation
            except RuntimeStoppedError:
                return
            if result.function_error:
                # Lambda retries failed asynchronous invocations twice; locally they are logged.
                log.warning("[%s] asynchronous invocation failed: %s", name, result.payload)

        task = asyncio.create_task(run())
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _client_context(encoded: str | None) -> str | None:
    """The client context JSON, from the base64 header boto3 sends."""
    if not encoded:
        return None
    text = base64.b64decode(encoded, validate=True).decode()
    json.loads(text)
    return text


async def _error(send: Send, status: int, error_type: str, message: str) -> None:
    body = json.dumps({"Type": "User", "message": message}).encode()
    await respond(send, status, [_JSON, (b"x-amzn-errortype", error_type.encode())], body)
