"""The Lambda Runtime API of one local sandbox, spoken to by a real ``awslambdaric``.

Each worker process gets its own server on its own loopback port, as each
Lambda sandbox has its own Runtime API endpoint. A shared port with a path
prefix in ``AWS_LAMBDA_RUNTIME_API`` (``127.0.0.1:9001/fn/users``) is not an
option: awslambdaric's C client accepts it for ``next``/``response``/``error``,
but reports init errors with ``http.client.HTTPConnection(address)``, which
rejects the prefix ("nonnumeric port"), so a broken handler would crash
instead of reporting ``Runtime.ImportModuleError``. One port per sandbox also
tells, without guessing, which process holds which invocation.

The server is a small asyncio protocol over ``h11`` (the sans-IO HTTP/1.1
library uvicorn is built on): keep-alive connections, each response written in
one ``write`` (TCP_NODELAY is asyncio's default), ``next`` long-polled until
an invocation is delivered.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import TypeVar, cast

import h11

from local_runtime.config import HOST

_PREFIX = "/2018-06-01/runtime"
_ACCEPTED = b'{"status":"OK"}'


@dataclass(frozen=True)
class Invocation:
    """One event handed to the runtime through ``GET .../invocation/next``."""

    request_id: str
    payload: bytes
    deadline_ms: int
    function_arn: str
    trace_id: str
    client_context: str | None = None  # JSON text
    cognito_identity: str | None = None  # JSON text

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The headers Lambda's Runtime API sends with an invocation."""
        headers = [
            (b"content-type", b"application/json"),
            (b"lambda-runtime-aws-request-id", self.request_id.encode()),
            (b"lambda-runtime-deadline-ms", str(self.deadline_ms).encode()),
            (b"lambda-runtime-invoked-function-arn", self.function_arn.encode()),
            # awslambdaric 4.2.2's C client crashes (SIGSEGV) when this header is absent.
            (b"lambda-runtime-trace-id", self.trace_id.encode()),
        ]
        if self.client_context is not None:
            headers.append((b"lambda-runtime-client-context", self.client_context.encode()))
        if self.cognito_identity is not None:
            headers.append((b"lambda-runtime-cognito-identity", self.cognito_identity.encode()))
        return headers


@dataclass(frozen=True)
class Ready:
    """The runtime finished its init phase and asked for the first invocation."""


@dataclass(frozen=True)
class Response:
    """The function returned; ``payload`` is its serialized result."""

    payload: bytes


@dataclass(frozen=True)
class FunctionError:
    """The function raised; ``payload`` is the runtime's error document."""

    payload: bytes


@dataclass(frozen=True)
class InitError:
    """The runtime could not initialise (e.g. the handler module failed to import)."""

    payload: bytes


@dataclass(frozen=True)
class Exited:
    """The worker process ended (``returncode`` negative: killed by that signal)."""

    returncode: int


Outcome = Response | FunctionError | InitError | Exited
InitOutcome = Ready | InitError | Exited


class RuntimeApi:
    """The Runtime API of one sandbox: at most one invocation in flight at a time."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[InitOutcome] = loop.create_future()
        self._current: Invocation | None = None
        self._outcome: asyncio.Future[Outcome] | None = None
        self._handed_out = False
        self._parked: _Connection | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    async def start(self) -> str:
        """Listen on a free loopback port; returns the ``AWS_LAMBDA_RUNTIME_API`` value."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Connection(self), HOST, 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"{HOST}:{port}"

    def deliver(self, invocation: Invocation) -> asyncio.Future[Outcome]:
        """Hand ``invocation`` to the runtime; the future resolves with what came of it."""
        if self._outcome is not None and not self._outcome.done():
            raise RuntimeError("the sandbox is already handling an invocation")
        self._current = invocation
        self._handed_out = False
        self._outcome = asyncio.get_running_loop().create_future()
        if self._parked is not None:
            parked, self._parked = self._parked, None
            self._hand_out(parked)
        return self._outcome

    def process_exited(self, returncode: int) -> None:
        """Resolve whatever waits on this sandbox: its process is gone."""
        exited = Exited(returncode)
        _settle(self.ready, exited)
        if self._outcome is not None:
            _settle(self._outcome, exited)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()

    # --- called by connections ------------------------------------------------

    def _next(self, conn: _Connection) -> None:
        _settle(self.ready, Ready())
        if self._current is not None and not self._handed_out:
            self._hand_out(conn)
        else:
            self._parked = conn

    def _hand_out(self, conn: _Connection) -> None:
        assert self._current is not None
        # A parked connection may have closed meanwhile: then the invocation waits for
        # the runtime's next request instead of being lost on a dead socket.
        self._handed_out = conn.respond(200, self._current.payload, self._current.headers())

    def _result(self, request_id: str, outcome: Response | FunctionError) -> bool:
        if self._current is None or self._current.request_id != request_id:
            return False
        self._current = None
        if self._outcome is not None:
            _settle(self._outcome, outcome)
        return True

    def _init_error(self, payload: bytes) -> None:
        _settle(self.ready, InitError(payload))


_T = TypeVar("_T")


def _settle(future: asyncio.Future[_T], value: _T) -> None:
    if not future.done():
        future.set_result(value)


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection from the runtime client."""

    def __init__(self, api: RuntimeApi) -> None:
        self._api = api
        self._h11 = h11.Connection(h11.SERVER)
        self._transport: asyncio.WriteTransport | None = None
        self._request: h11.Request | None = None
        self._body = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here.
        self._transport = cast("asyncio.WriteTransport", transport)
        self._api._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._api._connections.discard(self)
        if self._api._parked is self:
            self._api._parked = None

    def data_received(self, data: bytes) -> None:
        self._h11.receive_data(data)
        self._process()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def respond(self, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> bool:
        """Send a whole response in one write, then read the next request; False if closed."""
        if self._transport is None or self._transport.is_closing():
            return False
        headers = [*headers, (b"content-length", str(len(body)).encode())]
        out = self._h11.send(h11.Response(status_code=status, headers=headers))
        data = self._h11.send(h11.Data(data=body)) if body else b""
        end = self._h11.send(h11.EndOfMessage())
        self._transport.write(b"".join(x for x in (out, data, end) if x))
        if self._h11.our_state is h11.MUST_CLOSE:
            self._transport.close()
            return True
        self._h11.start_next_cycle()
        self._process()
        return True

    def _process(self) -> None:
        while True:
            try:
                event = self._h11.next_event()
            except h11.RemoteProtocolError:
                self.close()
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._request, self._body = event, bytearray()
                if self._h11.client_is_waiting_for_100_continue and self._transport:
                    continue_ = h11.InformationalResponse(status_code=100, headers=[])
                    self._transport.write(self._h11.send(continue_))
            elif isinstance(event, h11.Data):
                self._body += event.data
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
                return  # respond() resumes reading once this request is answered
            elif isinstance(event, h11.ConnectionClosed):
                self.close()
                return

    def _dispatch(self) -> None:
        assert self._request is not None
        method = self._request.method
        target = self._request.target.decode()
        body = bytes(self._body)
        if method == b"GET" and target == f"{_PREFIX}/invocation/next":
            self._api._next(self)
            return
        if method == b"POST" and target == f"{_PREFIX}/init/error":
            self._api._init_error(body)
            self._accepted()
            return
        if method == b"POST" and target.startswith(f"{_PREFIX}/invocation/"):
            request_id, _, kind = target[len(f"{_PREFIX}/invocation/") :].partition("/")
            if kind in ("response", "error"):
                outcome = Response(body) if kind == "response" else FunctionError(body)
                if self._api._result(request_id, outcome):
                    self._accepted()
                else:
                    self._fail(400, "InvalidRequestID", f"Invalid request ID: {request_id}")
                return
        self._fail(404, "InvalidRequest", f"{method.decode()} {target} is not served")

    def _accepted(self) -> None:
        self.respond(202, _ACCEPTED, [(b"content-type", b"application/json")])

    def _fail(self, status: int, error_type: str, message: str) -> None:
        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        self.respond(status, body, [(b"content-type", b"application/json")])
