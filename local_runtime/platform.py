"""``LocalPlatform``: the whole platform on one machine, as a library object.

It starts, on 127.0.0.1 only: moto (the AWS endpoint) with every declared
resource, a throwaway PostgreSQL cluster (unless ``DATABASE_URL`` is given),
the Lambda runtime (worker pools behind per-sandbox Runtime APIs), the table
stream poller (the event source mappings), the Lambda Invoke endpoint, the
HTTP API gateway and the WebSocket API (with its ``@connections`` endpoint,
when the platform declares one); then it applies the database migrations
through the declared ``db-migrate`` function.

Everything runs on an event loop in a background thread, so the object works
the same from synchronous code (``with LocalPlatform() as p``), from async
code (``async with``), and from the CLI (``python -m local_runtime up``)::

    with LocalPlatform(ports=Ports.ephemeral()) as local:
        httpx.get(f"{local.endpoints.http_api}/mentors")
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, TypeVar

import httpx

from blueprint import PLATFORM
from blueprint.environment import environment_for
from blueprint.model import Function, Platform
from blueprint.platform import DB_MIGRATE
from local_runtime import config, idle_gc
from local_runtime.authorizer import JwksCache, JwtAuthorizer
from local_runtime.aws import MotoServer, Provisioned, provision
from local_runtime.gateway import HttpApiGateway, RouteTable
from local_runtime.invoke_api import LambdaInvokeApi
from local_runtime.net import AsgiServer, bind, free_port, port_of
from local_runtime.postgres import LocalPostgres
from local_runtime.resolver import LocalResolver
from local_runtime.streams import PollerSettings, StreamPoller
from local_runtime.websocket_gateway import ApiGatewayWSProtocol, WebSocketGateway
from local_runtime.workers import InvokeRequest, InvokeResult, LambdaRuntime

log = logging.getLogger("local_runtime")

MIGRATE_FUNCTION: Final = DB_MIGRATE.name
START_TIMEOUT_S: Final = 120.0
STOP_TIMEOUT_S: Final = 60.0
_T = TypeVar("_T")


class LocalPlatformError(RuntimeError):
    """The local platform could not start."""


@dataclass(frozen=True)
class Endpoints:
    """Where everything listens; also written to ``.local/endpoints.json``."""

    http_api: str
    websocket: str | None  # ws:// URL of the WebSocket API; its @connections is http:// on it
    aws: str
    lambda_invoke: str
    database_url: str | None
    issuer: str
    audience: str
    region: str
    resources: Provisioned

    def as_json(self) -> dict[str, Any]:
        """The JSON document scripts read."""
        return {
            "http_api": self.http_api,
            "websocket": self.websocket,
            "aws": self.aws,
            "lambda": self.lambda_invoke,
            "database_url": self.database_url,
            "issuer": self.issuer,
            "audience": self.audience,
            "region": self.region,
            "resources": self.resources.as_json(),
        }


class LocalPlatform:
    """The platform's AWS endpoint, database, functions and HTTP API, on 127.0.0.1.

    Args:
        platform: the declaration to serve (default: ``blueprint.PLATFORM``).
        ports: where to listen (default: ``Ports.from_env()``; ``Ports.ephemeral()`` in tests).
        database_url: an existing database; skips the local cluster. Default: ``$DATABASE_URL``.
        postgres: start the local cluster; default: when a function uses the database.
        pg_dir: the cluster's folder (default ``.local/pg``); must be reachable by ``postgres``.
        endpoints_file: where to write the endpoints JSON (default: nowhere).
        integration_timeout_s: the HTTP API's integration timeout (AWS: 30 s).
        python_path: folders put before the repository on the workers' ``PYTHONPATH``.
        environment: extra variables per function name, on top of the declared environment
            (tests use it to raise per-client rate limits; nothing else differs).
        ws_idle_timeout_s: close WebSocket connections idle this long (default: the
            declaration's ``idle_timeout_s``, API Gateway's 10 minutes); tests use seconds.
        ws_max_duration_s: close WebSocket connections this long after they opened
            (default: the declaration's ``max_duration_s``, 2 hours).
        stream_settings: how the table stream poller paces its reads and retries
            (default: ``PollerSettings.from_env()``, a 50 ms poll unless
            ``LWM_STREAM_POLL_MS`` says otherwise; tests shorten the backoff).
    """

    def __init__(
        self,
        platform: Platform = PLATFORM,
        *,
        ports: config.Ports | None = None,
        database_url: str | None = None,
        postgres: bool | None = None,
        pg_dir: Path = config.PG_DATA_DIR,
        endpoints_file: Path | None = None,
        integration_timeout_s: float = config.HTTP_API_INTEGRATION_TIMEOUT_S,
        python_path: Sequence[Path] = (),
        environment: Mapping[str, Mapping[str, str]] | None = None,
        ws_idle_timeout_s: float | None = None,
        ws_max_duration_s: float | None = None,
        stream_settings: PollerSettings | None = None,
    ) -> None:
        self.platform = platform
        self.ports = ports or config.Ports.from_env()
        self._database_url = database_url or os.environ.get(config.ENV_DATABASE_URL) or None
        wants_db = any(fn.uses_database for fn in platform.functions())
        self._postgres = (wants_db if postgres is None else postgres) and not self._database_url
        self._pg_dir = pg_dir
        self._endpoints_file = endpoints_file
        self._integration_timeout_s = integration_timeout_s
        self._python_path = [*python_path, config.REPO_ROOT, config.REPO_ROOT / "layers" / "core"]
        self._extra_env = {name: dict(env) for name, env in (environment or {}).items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stack: AsyncExitStack | None = None
        self._endpoints: Endpoints | None = None
        self._runtime: LambdaRuntime | None = None
        self._gateway: HttpApiGateway | None = None
        self._ws_gateway: WebSocketGateway | None = None
        self._ws_idle_timeout_s = ws_idle_timeout_s
        self._ws_max_duration_s = ws_max_duration_s
        self._stream_settings = stream_settings
        self._streams: StreamPoller | None = None
        self._collecting = False  # holds the process's idle collector (idle_gc)

    # --- lifecycle -----------------------------------------------------------

    def start(self) -> Endpoints:
        """Start everything; returns once the HTTP API answers (a few seconds)."""
        if self._thread is not None:
            raise LocalPlatformError("already started")
        idle_gc.acquire()  # the gateway's full-collection pauses, moved to idle moments
        self._collecting = True
        loop = _new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=_run_forever, args=(loop,), name="lwm-local")
        self._thread.daemon = True
        self._thread.start()
        try:
            endpoints = self._call(self._astart(), START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self._endpoints = endpoints
        return endpoints

    def stop(self) -> None:
        """Stop the gateway, the workers, moto and PostgreSQL; safe to call twice."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            self._release_collector()
            return
        try:
            if self._stack is not None:
                self._call(self._stack.aclose(), STOP_TIMEOUT_S)
        finally:
            self._stack = None
            loop.call_soon_threadsafe(loop.stop)
            thread.join(STOP_TIMEOUT_S)
            self._loop = self._thread = None
            self._endpoints = None
            self._release_collector()

    def _release_collector(self) -> None:
        if self._collecting:
            self._collecting = False
            idle_gc.release()

    def __enter__(self) -> LocalPlatform:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalPlatform:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # --- use -----------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        """Where everything listens (after :meth:`start`)."""
        if self._endpoints is None:
            raise LocalPlatformError("not started")
        return self._endpoints

    @property
    def runtime(self) -> LambdaRuntime:
        """The worker pools (for diagnostics and tests)."""
        if self._runtime is None:
            raise LocalPlatformError("not started")
        return self._runtime

    @property
    def gateway(self) -> HttpApiGateway:
        """The HTTP API app (its ``integration_timeout_s`` may be changed while running)."""
        if self._gateway is None:
            raise LocalPlatformError("not started")
        return self._gateway

    @property
    def websocket_gateway(self) -> WebSocketGateway:
        """The WebSocket API app (its open ``connections``; its timeouts may be changed)."""
        if self._ws_gateway is None:
            raise LocalPlatformError("not started, or the platform declares no WebSocket API")
        return self._ws_gateway

    @property
    def streams(self) -> StreamPoller:
        """The table stream consumers (their ``stats``, for diagnostics and tests)."""
        if self._streams is None:
            raise LocalPlatformError("not started")
        return self._streams

    def invoke(self, name: str, event: object = None) -> InvokeResult:
        """Invoke a declared function synchronously with a JSON ``event``, from any thread."""
        fn = self.runtime.find(name)
        if fn is None:
            raise KeyError(name)
        payload = json.dumps({} if event is None else event).encode()
        return self._call(self.runtime.invoke(fn, InvokeRequest(payload)), None)

    # --- internals -----------------------------------------------------------

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _astart(self) -> Endpoints:
        stack = self._stack = AsyncExitStack()
        http_sock = bind(self.ports.http, config.ENV_HTTP_PORT)
        stack.callback(http_sock.close)
        lambda_sock = bind(self.ports.lambda_, config.ENV_LAMBDA_PORT)
        stack.callback(lambda_sock.close)
        http_api = config.url(port_of(http_sock))
        lambda_invoke = config.url(port_of(lambda_sock))
        ws_sock = None
        if self.platform.websocket is not None:
            ws_sock = bind(self.ports.websocket, config.ENV_WS_PORT)
            stack.callback(ws_sock.close)
        ws_management = config.url(port_of(ws_sock)) if ws_sock else ""

        physical = [config.physical_name(fn.name) for fn in self.platform.functions()]
        moto = MotoServer(self.ports.aws, lambda_invoke, physical)
        stack.push_async_callback(asyncio.to_thread, moto.stop)
        database = self._start_database(stack)
        aws, database_url = await asyncio.gather(asyncio.to_thread(moto.start), database)

        resources = await asyncio.to_thread(provision, self.platform, aws, [http_api])
        resolver = LocalResolver(
            resources,
            aws_endpoint=aws,
            http_api=http_api,
            database_url=database_url,
            websocket_management=ws_management,
        )
        runtime = self._runtime = LambdaRuntime(
            self.platform,
            lambda fn: {
                **environment_for(self.platform, fn, resolver),
                **self._extra_env.get(fn.name, {}),
            },
            self._python_path,
        )
        stack.push_async_callback(runtime.close)

        # Table streams feed their functions from now on (stopped before the workers).
        self._streams = StreamPoller(
            self.platform,
            runtime,
            endpoint=aws,
            tables=resources.tables,
            queues=resources.queues,
            settings=self._stream_settings,
        )
        stack.push_async_callback(self._streams.stop)
        await self._streams.start()

        invoke_server = AsgiServer(LambdaInvokeApi(runtime), lambda_sock, "lambda-invoke")
        await invoke_server.start()
        stack.push_async_callback(invoke_server.stop)

        jwks_client = await stack.enter_async_context(httpx.AsyncClient(trust_env=False))
        keys = JwksCache(resolver.issuer, jwks_client)
        self._gateway = HttpApiGateway(
            RouteTable(self.platform.routes()),
            runtime,
            JwtAuthorizer(resolver.issuer, [resolver.audience], keys),
            integration_timeout_s=self._integration_timeout_s,
        )
        gateway_server = AsgiServer(self._gateway, http_sock, "http-api")
        await gateway_server.start()
        stack.push_async_callback(gateway_server.stop)

        websocket = await self._start_websocket(stack, runtime, ws_sock)
        if websocket:
            self._gateway.web_client.websocket_url = websocket  # the page connects here

        await self._migrate(runtime)
        endpoints = Endpoints(
            http_api=http_api,
            websocket=websocket,
            aws=aws,
            lambda_invoke=lambda_invoke,
            database_url=database_url,
            issuer=resolver.issuer,
            audience=resolver.audience,
            region=config.REGION,
            resources=resources,
        )
        if self._endpoints_file is not None:
            self._write_endpoints(stack, endpoints)
        return endpoints

    async def _start_websocket(
        self, stack: AsyncExitStack, runtime: LambdaRuntime, sock: socket.socket | None
    ) -> str | None:
        """Serve the declared WebSocket API; its ws:// URL (None when none is declared)."""
        api = self.platform.websocket
        if api is None or sock is None:
            return None
        self._ws_gateway = WebSocketGateway(
            api,
            self.platform,
            runtime,
            idle_timeout_s=self._ws_idle_timeout_s,
            max_duration_s=self._ws_max_duration_s,
        )
        server = AsgiServer(
            self._ws_gateway,
            sock,
            "websocket-api",
            ws=ApiGatewayWSProtocol,
            ws_max_size=config.WS_MESSAGE_MAX_BYTES,
        )
        await server.start()
        stack.push_async_callback(server.stop)
        return config.url(port_of(sock), "ws")

    async def _start_database(self, stack: AsyncExitStack) -> str | None:
        if not self._postgres:
            return self._database_url
        port = self.ports.postgres or free_port()
        postgres = LocalPostgres(self._pg_dir, port)
        stack.push_async_callback(postgres.stop)
        return await postgres.start()

    async def _migrate(self, runtime: LambdaRuntime) -> None:
        """Apply migrations through the declared ``db-migrate`` function, as the deploy does."""
        fn = runtime.find(MIGRATE_FUNCTION)
        if fn is None:
            return
        if not _module_exists(fn):
            log.warning(
                "%s: its handler %s does not exist yet; database migrations were NOT applied",
                fn.name,
                fn.handler,
            )
            return
        result = await runtime.invoke(fn, InvokeRequest(b"{}"))
        if result.function_error:
            raise LocalPlatformError(f"{fn.name} failed: {result.payload.decode()}")
        log.info("%s: %s", fn.name, result.payload.decode())
        await runtime.retire(fn)  # like a deploy-time trigger, it need not stay warm

    def _write_endpoints(self, stack: AsyncExitStack, endpoints: Endpoints) -> None:
        path = self._endpoints_file
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(endpoints.as_json(), indent=2) + "\n")
        stack.callback(path.unlink, missing_ok=True)


def _module_exists(fn: Function) -> bool:
    base = config.REPO_ROOT.joinpath(*fn.module.split("."))
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # uvicorn[standard] brings it; faster sockets and subprocesses
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
