"""The Lambda Runtime API of one sandbox (``local_runtime.runtime_api``).

A raw HTTP client plays ``awslambdaric``: it long-polls ``invocation/next``,
then posts the response or the error, or reports an init error. The server
listens on a loopback port; nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import pytest

from local_runtime.runtime_api import (
    Exited,
    FunctionError,
    InitError,
    Invocation,
    Ready,
    Response,
    RuntimeApi,
)

PREFIX = "/2018-06-01/runtime"
ARN = "arn:aws:lambda:us-east-1:123456789012:function:lwm-local-users"
TRACE = "Root=1-5f84c7a9-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0"
TIMEOUT_S = 5.0
T = TypeVar("T")


@dataclass
class Sandbox:
    api: RuntimeApi
    runtime: httpx.AsyncClient  # what awslambdaric would be

    async def next(self) -> httpx.Response:
        return await self.runtime.get(f"{PREFIX}/invocation/next")

    async def post(self, path: str, body: bytes = b"", **headers: str) -> httpx.Response:
        return await self.runtime.post(f"{PREFIX}{path}", content=body, headers=headers)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    api = RuntimeApi()
    address = await api.start()
    client = httpx.AsyncClient(base_url=f"http://{address}", trust_env=False, timeout=TIMEOUT_S)
    try:
        yield Sandbox(api, client)
    finally:
        await client.aclose()
        await api.close()


def _invocation(request_id: str = "req-1", **extra: str) -> Invocation:
    return Invocation(
        request_id=request_id,
        payload=json.dumps({"rawPath": "/mentors"}).encode(),
        deadline_ms=1_800_000_010_000,
        function_arn=ARN,
        trace_id=TRACE,
        **extra,
    )


async def _wait(awaitable: Awaitable[T]) -> T:
    return await asyncio.wait_for(awaitable, TIMEOUT_S)


async def test_start_listens_on_a_loopback_port(sandbox: Sandbox) -> None:
    # Given a started Runtime API
    # Then its address is 127.0.0.1 with a port, as AWS_LAMBDA_RUNTIME_API expects
    host, _, port = str(sandbox.runtime.base_url.netloc.decode()).partition(":")
    assert host == "127.0.0.1" and int(port) > 0


async def test_next_long_polls_until_an_invocation_is_delivered(sandbox: Sandbox) -> None:
    # Given the runtime finished init and asks for work
    polling = asyncio.create_task(sandbox.next())
    # Then asking is the sign that init is over
    assert await _wait(sandbox.api.ready) == Ready()
    assert not polling.done()
    # When an invocation is delivered
    outcome = sandbox.api.deliver(_invocation(client_context='{"custom":{"a":"b"}}'))
    response = await _wait(polling)
    # Then the runtime gets the event with Lambda's invocation headers
    assert response.status_code == 200
    assert response.json() == {"rawPath": "/mentors"}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["lambda-runtime-aws-request-id"] == "req-1"
    assert response.headers["lambda-runtime-deadline-ms"] == "1800000010000"
    assert response.headers["lambda-runtime-invoked-function-arn"] == ARN
    assert response.headers["lambda-runtime-trace-id"] == TRACE
    assert response.headers["lambda-runtime-client-context"] == '{"custom":{"a":"b"}}'
    assert "lambda-runtime-cognito-identity" not in response.headers
    assert not outcome.done()


async def test_an_invocation_delivered_first_is_handed_to_the_next_poll(
    sandbox: Sandbox,
) -> None:
    # Given an invocation waiting before the runtime asks
    sandbox.api.deliver(_invocation("req-early"))
    # When the runtime asks
    response = await sandbox.next()
    # Then it gets that invocation at once
    assert response.headers["lambda-runtime-aws-request-id"] == "req-early"
    assert "lambda-runtime-client-context" not in response.headers


async def test_the_response_resolves_the_outcome(sandbox: Sandbox) -> None:
    # Given an invocation handed to the runtime
    outcome = sandbox.api.deliver(_invocation())
    await sandbox.next()
    # When the runtime posts the function's result
    posted = await sandbox.post("/invocation/req-1/response", b'{"statusCode":200}')
    # Then it is accepted and the caller gets the result
    assert posted.status_code == 202
    assert posted.json() == {"status": "OK"}
    assert await _wait(outcome) == Response(b'{"statusCode":200}')


async def test_an_error_resolves_the_outcome_as_a_function_error(sandbox: Sandbox) -> None:
    # Given an invocation handed to the runtime
    outcome = sandbox.api.deliver(_invocation())
    await sandbox.next()
    # When the runtime reports that the handler raised
    document = json.dumps({"errorType": "ValueError", "errorMessage": "boom"}).encode()
    posted = await sandbox.post(
        "/invocation/req-1/error",
        document,
        **{"Lambda-Runtime-Function-Error-Type": "Unhandled", "Content-Type": "application/json"},
    )
    # Then it is accepted and the caller gets the error document
    assert posted.status_code == 202
    assert await _wait(outcome) == FunctionError(document)


async def test_a_wrong_request_id_is_a_400_and_changes_nothing(sandbox: Sandbox) -> None:
    # Given an invocation handed to the runtime
    outcome = sandbox.api.deliver(_invocation())
    await sandbox.next()
    # When a result for another request id is posted
    posted = await sandbox.post("/invocation/req-other/response", b"{}")
    # Then 400 InvalidRequestID, and the invocation still waits for its own result
    assert posted.status_code == 400
    assert posted.json() == {
        "errorType": "InvalidRequestID",
        "errorMessage": "Invalid request ID: req-other",
    }
    assert not outcome.done()
    await sandbox.post("/invocation/req-1/response", b"{}")
    assert await _wait(outcome) == Response(b"{}")


async def test_a_second_result_for_the_same_request_is_a_400(sandbox: Sandbox) -> None:
    # Given an invocation whose result was posted
    outcome = sandbox.api.deliver(_invocation())
    await sandbox.next()
    await sandbox.post("/invocation/req-1/response", b"1")
    # When another result, or an error, is posted for it
    again = await sandbox.post("/invocation/req-1/response", b"2")
    error = await sandbox.post("/invocation/req-1/error", b"{}")
    # Then both are refused and the first result stands
    assert (again.status_code, error.status_code) == (400, 400)
    assert await _wait(outcome) == Response(b"1")


async def test_invocations_follow_each_other_on_one_connection(sandbox: Sandbox) -> None:
    # Given a runtime that handles one invocation after another
    for n in range(3):
        outcome = sandbox.api.deliver(_invocation(f"req-{n}"))
        # When it polls, answers, and polls again
        response = await sandbox.next()
        request_id = response.headers["lambda-runtime-aws-request-id"]
        await sandbox.post(f"/invocation/{request_id}/response", str(n).encode())
        # Then each invocation gets its own result
        assert request_id == f"req-{n}"
        assert await _wait(outcome) == Response(str(n).encode())


async def test_one_invocation_at_a_time(sandbox: Sandbox) -> None:
    # Given an invocation in flight
    sandbox.api.deliver(_invocation())
    # When another is delivered before the first ends
    # Then it is refused
    with pytest.raises(RuntimeError, match="already handling"):
        sandbox.api.deliver(_invocation("req-2"))


async def test_an_init_error_resolves_ready(sandbox: Sandbox) -> None:
    # Given a runtime whose handler module failed to import
    document = json.dumps(
        {"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named 'x'"}
    ).encode()
    # When it reports the init error
    posted = await sandbox.post(
        "/init/error",
        document,
        **{"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"},
    )
    # Then it is accepted and the sandbox is known to have failed its init
    assert posted.status_code == 202
    assert await _wait(sandbox.api.ready) == InitError(document)


async def test_the_process_exiting_resolves_everything_waiting(sandbox: Sandbox) -> None:
    # Given an invocation delivered to a sandbox that never finished init
    outcome = sandbox.api.deliver(_invocation())
    # When its process is killed
    sandbox.api.process_exited(-9)
    # Then init and the invocation both resolve as exited
    assert await _wait(sandbox.api.ready) == Exited(-9)
    assert await _wait(outcome) == Exited(-9)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/invocation/req-1/response"),
        ("POST", "/invocation/next"),
        ("POST", "/invocation/req-1/other"),
        ("GET", "/nowhere"),
    ],
)
async def test_anything_else_is_a_404(sandbox: Sandbox, method: str, path: str) -> None:
    # Given a request the Runtime API does not serve
    # When the runtime sends it
    response = await sandbox.runtime.request(method, f"{PREFIX}{path}")
    # Then 404 InvalidRequest
    assert response.status_code == 404
    assert response.json()["errorType"] == "InvalidRequest"
