"""The one place where moto's Lambda is routed to the local workers.

moto 5.2.5 runs Lambda code only in Docker. Every path by which moto invokes
a function -- the Invoke API, Step Functions tasks, SQS/SNS/DynamoDB-stream
event source mappings, S3 notifications -- ends in
``moto.awslambda.models.LambdaFunction._invoke_lambda(self, event) -> (json_str,
errored, logs)``. This module replaces that private method (moto is pinned,
see ``docs/decisions-local.md``) with a call to the local Lambda Invoke API,
so those paths reach the real handler in a real worker. Functions this module
was not told about fall back to moto's own implementation.

While routed, a function's ``docker_client`` raises ``AttributeError``
instead of trying to reach a Docker engine that does not exist here: moto's
state dump (``/moto-api/data.json``, read by the local mailbox) skips
attributes that raise it, and would otherwise fail as a whole.

It runs inside moto's own process (:mod:`local_runtime.moto_process`); the
functions are registered through the Lambda API by :mod:`local_runtime.aws`.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import httpx
from moto.awslambda.models import LambdaFunction

_routes: dict[str, str] = {}  # physical function name -> Invoke API base URL
_lock = threading.Lock()
_original = LambdaFunction._invoke_lambda
_original_docker_client = LambdaFunction.docker_client
_client = httpx.Client(trust_env=False)


def route(functions: Mapping[str, str]) -> None:
    """Send invocations of these functions (physical name -> Invoke API URL) to the workers."""
    with _lock:
        _routes.update(functions)
        LambdaFunction._invoke_lambda = _invoke_lambda  # type: ignore[method-assign]
        LambdaFunction.docker_client = property(_no_docker)  # type: ignore[assignment,method-assign]


def unroute(names: Iterable[str]) -> None:
    """Give these functions back to moto; the original method returns with the last one."""
    with _lock:
        for name in names:
            _routes.pop(name, None)
        if not _routes:
            LambdaFunction._invoke_lambda = _original  # type: ignore[method-assign]
            LambdaFunction.docker_client = _original_docker_client  # type: ignore[method-assign]


def _no_docker(self: LambdaFunction) -> Any:
    raise AttributeError("no Docker engine: local functions run in the local runtime's workers")


def _invoke_lambda(self: LambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    """The replacement of ``LambdaFunction._invoke_lambda``, run in moto's request threads."""
    endpoint = _routes.get(self.function_name)
    if endpoint is None:
        return _original(self, event)
    # moto passes the JSON-parsed body, or the string "{}" when there was none.
    payload = b"{}" if event is None or event == "{}" else json.dumps(event).encode()
    try:
        response = _client.post(
            f"{endpoint}/2015-03-31/functions/{self.function_name}/invocations",
            content=payload,
            headers={"X-Amz-Log-Type": "Tail"},
            timeout=float(self.timeout) + 30.0,
        )
    except httpx.HTTPError as e:
        message = json.dumps({"errorType": "ServiceException", "errorMessage": str(e)})
        return message, True, ""
    logs = base64.b64decode(response.headers.get("x-amz-log-result", "")).decode(errors="replace")
    errored = response.status_code != 200 or "x-amz-function-error" in response.headers
    self.logs_backend.ensure_log_group(self.logs_group_name)
    self.save_logs(logs)  # readable through moto's CloudWatch Logs, as in AWS
    return response.text, errored, logs
