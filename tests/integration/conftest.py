"""Integration fixtures: the users handler in this process, wired to the shared local stack.

The handler's environment is the one the local runtime gives its sandboxes,
computed from the declaration (``blueprint.environment.environment_for``), so
no variable is copied by hand. It talks to moto server and PostgreSQL over
real connections; only the gateway is left out: tests hand it events.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from local_runtime import LocalPlatform

# Keys of the sandbox environment that belong to the process, not the function.
_PROCESS_KEYS = {"PATH", "LANG", "TZ", "PYTHONPATH", "PYTHONUNBUFFERED", "LAMBDA_TASK_ROOT"}


@dataclass(frozen=True)
class LambdaContext:
    """The parts of the Lambda context object that Powertools and Mangum read."""

    function_name: str = "lwm-local-users"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:lwm-local-users"
    aws_request_id: str = ""

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


@dataclass(frozen=True)
class Reply:
    """A handler's API Gateway result, decoded."""

    status: int
    headers: dict[str, str]
    body: Any

    @property
    def code(self) -> str | None:
        return self.body.get("code") if isinstance(self.body, dict) else None


Invoke = Callable[[dict[str, Any]], Reply]


@pytest.fixture(scope="session")
def users_environment(local: LocalPlatform) -> dict[str, str]:
    """The users function's sandbox environment, as the local runtime computes it."""
    fn = local.runtime.find("users")
    assert fn is not None
    env = dict(local.runtime.pool(fn).spec.environment)
    return {k: v for k, v in env.items() if k not in _PROCESS_KEYS}


@pytest.fixture(scope="module")
def users_handler(users_environment: dict[str, str]) -> Iterator[Callable[..., dict[str, Any]]]:
    """``functions.users.handler.handler`` imported here with the function's environment.

    Module-scoped: the environment is this process's while the module runs, and
    restored after, so that tests elsewhere never see the function's variables.
    """
    saved = {k: os.environ.get(k) for k in users_environment}
    os.environ.update(users_environment)
    try:
        from functions.users import service
        from functions.users.handler import handler

        service.settings.cache_clear()
        service.deps.cache_clear()
        service.limiter.cache_clear()
        yield handler
    finally:
        service.settings.cache_clear()
        service.deps.cache_clear()
        service.limiter.cache_clear()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def invoke(users_handler: Callable[..., dict[str, Any]]) -> Invoke:
    """Invoke the users handler with an event; the reply's JSON body is decoded."""

    def call(event: dict[str, Any]) -> Reply:
        result = users_handler(event, LambdaContext(aws_request_id=str(uuid.uuid4())))
        text = result.get("body") or ""
        try:
            body: Any = json.loads(text) if text else None
        except ValueError:
            body = text
        headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        return Reply(result["statusCode"], headers, body)

    return call
