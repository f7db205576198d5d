"""moto's request dispatch, without a walk of its package on every request.

Two shortcuts, both taken in moto's own process by :func:`apply`:

* moto's server finds the backend of each request with
  ``DomainDispatcherApplication.get_backend_for_host``, which lists moto's
  package folder (``os.listdir`` and an ``isdir`` per entry, some 200 of them)
  and then tries every service's URL patterns in turn. It answers the same for
  the same host every time, yet it was 15% of the CPU of a ``GetItem`` served
  here: its answer is remembered per host.
* DynamoDB and DynamoDB Streams requests (every one a ``POST /`` naming its
  operation in ``X-Amz-Target``) go straight to moto's handler of the service,
  as its Flask view would call it, without Flask's routing and response
  objects around it: a quarter of the CPU of an item request. Every other
  request (S3, SQS, ..., and anything else sent to those two) takes moto's
  usual path.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_applied = False
_lock = threading.Lock()


def apply() -> None:
    """Patch moto's dispatcher (idempotent); call before its server starts."""
    global _applied
    with _lock:
        if _applied:
            return
        _applied = True
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    modules = frozenset(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules
    original = DomainDispatcherApplication.get_backend_for_host
    answers: dict[str | None, Any] = {}

    @functools.wraps(original)
    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        try:
            return answers[host]
        except KeyError:
            found = answers[host] = original(self, host)
            return found

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]
    _route_item_requests(DomainDispatcherApplication)


def _route_item_requests(dispatcher: Any) -> None:
    from botocore.exceptions import ClientError
    from moto.dynamodb.responses import DynamoHandler
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
    from moto.moto_server.werkzeug_app import BackendRequest
    from werkzeug.http import HTTP_STATUS_CODES

    handlers = {
        "DynamoDB_20120810": DynamoHandler,
        "DynamoDBStreams_20120810": DynamoDBStreamsHandler,
    }
    original = dispatcher.__call__

    def __call__(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        service = str(environ.get("HTTP_X_AMZ_TARGET", "")).partition(".")[0]
        handler = handlers.get(service)
        if handler is None or environ.get("REQUEST_METHOD") != "POST":
            return original(self, environ, start_response)
        request = BackendRequest(environ)
        try:
            status, headers, body = handler.dispatch(
                request, request.raw_url, dict(request.headers)
            )
        except ClientError as exc:  # as moto's Flask view answers it
            status, headers, body = 400, {}, exc.response["Error"]["Message"]
        payload = body.encode() if isinstance(body, str) else bytes(body or b"")
        out = [(k, str(v)) for k, v in headers.items() if k.lower() not in _OWN_HEADERS]
        out += [("Content-Length", str(len(payload)))]
        if not any(k.lower() == "content-type" for k, _ in out):
            out.append(("Content-Type", "application/x-amz-json-1.0"))
        start_response(f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}", out)
        return [payload]

    dispatcher.__call__ = __call__


_OWN_HEADERS = frozenset({"status", "content-length"})
