"""API latency: p50/p95/p99 of three operations through the local HTTP API gateway.

Starts the whole platform in-process (``LocalPlatform`` on free ports, a throwaway
PostgreSQL cluster), loads the demo accounts through the API, warms the users
function's sandboxes, then sends each operation ``--requests`` times from
``--concurrency`` concurrent clients (one ``httpx.AsyncClient``):

* ``POST /auth/login``  (argon2 is deliberately slow: fewer requests, ``--login-requests``)
* ``GET /me``           (with a bearer token: the JWT authorizer runs)
* ``GET /mentors?...``  (mentor search: python, en, USD, cheapest first)

The gateway's own overhead is measured at concurrency 1, in rounds of three
sequential ``GET /me`` (in a shuffled order each round, so drift hits all alike):

* direct: the same warm handler invoked through the Lambda runtime with the very
  event the gateway builds (``build_event`` with the JWT authorizer's grant), timed
  on the platform's event loop;
* through the gateway with a minimal HTTP/1.1 keep-alive client (client-side time;
  the gateway's access log also gives the part spent inside the gateway app);
* through the gateway with ``httpx.AsyncClient`` (whose own cost is a few ms here).

overhead = p50(gateway, minimal client) - p50(direct); ``--overhead-client httpx``
uses the httpx path instead. Target: <= 5 ms.

    python bench/api_latency.py [--requests 300] [--login-requests 60] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "core"), str(ROOT / "bench")]

import httpx  # noqa: E402
from _common import emit_json, median, percentile, print_table  # noqa: E402

from local_runtime import LocalPlatform, Ports  # noqa: E402
from local_runtime.demo_data import DEMO_PASSWORD, MENTEES, PEOPLE, seed  # noqa: E402
from local_runtime.gateway import build_event, new_request_id, to_http  # noqa: E402
from local_runtime.workers import InvokeRequest  # noqa: E402

TARGET_OVERHEAD_MS = 5.0
FUNCTION = "users"
SEARCH = "/mentors?skill=python&language=en&currency=USD&sort=price_asc&limit=10"
# The users function's per-client limits, raised so that the benchmark measures
# latency, not 429s: every client here shares 127.0.0.1 (names: functions/users/api.py).
RATE_LIMITS = {
    "ip-route": (10_000_000, 60),
    "user-route": (10_000_000, 60),
    "register-ip": (10_000_000, 3600),
    "login-fail-account": (10_000_000, 900),
    "login-fail-client": (10_000_000, 900),
}
_T = TypeVar("_T")


class BenchError(RuntimeError):
    """A request did not answer as expected: the figures would be meaningless."""


@dataclass
class GatewayLog:
    """The gateway's own duration per request, read from its access log record.

    ``HttpApiGateway`` logs ``method path status duration_ms request_id`` at INFO
    for every request; the raw float is in the record's args (no formatting).
    """

    durations_ms: dict[str, float] = field(default_factory=dict)

    def install(self) -> Callable[[], None]:
        logger = logging.getLogger("local_runtime.gateway")
        handler = _Capture(self)
        saved = logger.level, logger.propagate
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False

        def uninstall() -> None:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]

        return uninstall

    def take(self, request_ids: list[str]) -> list[float]:
        return [self.durations_ms.pop(r) for r in request_ids if r in self.durations_ms]


class _Capture(logging.Handler):
    def __init__(self, sink: GatewayLog) -> None:
        super().__init__(logging.INFO)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            self._sink.durations_ms[str(args[4])] = float(args[3])  # type: ignore[arg-type]


@dataclass
class Samples:
    """Client-side latencies of one operation, and the gateway-side ones."""

    name: str
    client_ms: list[float] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    gateway_ms: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code != 200:
        raise BenchError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")


async def _load(
    name: str,
    send: Callable[[int], Awaitable[httpx.Response]],
    requests: int,
    concurrency: int,
) -> Samples:
    """``requests`` calls of ``send`` from ``concurrency`` tasks; each response must be 200."""
    samples = Samples(name)
    next_index = iter(range(requests))

    async def client() -> None:
        for i in next_index:
            started = time.perf_counter()
            response = await send(i)
            elapsed = (time.perf_counter() - started) * 1000
            _check(response, name)
            samples.client_ms.append(elapsed)
            samples.request_ids.append(response.headers.get("apigw-requestid", ""))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    samples.wall_s = time.perf_counter() - started
    return samples


class Direct:
    """Invokes the users function the way the gateway does, minus the gateway."""

    def __init__(self, local: LocalPlatform, client: httpx.AsyncClient, token: str) -> None:
        self._local = local
        self._loop = local._loop
        gateway = local.gateway
        fn = local.runtime.find(FUNCTION)
        if fn is None:
            raise BenchError(f"no function called {FUNCTION!r}")
        self._fn = fn
        self._match = gateway._routes.match("GET", "/me")
        if self._match is None or self._match.fn.name != FUNCTION:
            raise BenchError("GET /me is not a route of the users function")
        # The request exactly as the gateway's ASGI scope shows it: httpx's headers.
        request = client.build_request("GET", "/me", headers={"authorization": f"Bearer {token}"})
        self.headers: list[tuple[bytes, bytes]] = [(k.lower(), v) for k, v in request.headers.raw]
        http_api = httpx.URL(local.endpoints.http_api)
        self._scope: dict[str, Any] = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/me",
            "raw_path": b"/me",
            "query_string": b"",
            "headers": self.headers,
            "client": ("127.0.0.1", 50000),
            "server": (http_api.host, http_api.port),
        }
        self._grant = self._call(
            gateway._authorizer.authorize(self._match.route, f"Bearer {token}")
        )

    def _call(self, coro: Coroutine[Any, Any, _T]) -> _T:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def event(self) -> bytes:
        """A fresh event (new request id and time), serialized as the gateway does."""
        assert self._match is not None
        event = build_event(self._scope, self._match, b"", new_request_id(), self._grant)
        return json.dumps(event, separators=(",", ":")).encode()

    async def _timed(self, payload: bytes) -> tuple[float, bytes]:
        started = time.perf_counter()
        result = await self._local.runtime.invoke(self._fn, InvokeRequest(payload))
        elapsed = (time.perf_counter() - started) * 1000
        if result.function_error:
            raise BenchError(f"direct invoke failed: {result.payload[:300]!r}")
        return elapsed, result.payload

    async def invoke(self) -> tuple[float, bytes]:
        """One direct invocation, timed on the platform's loop (ms, and its payload)."""
        assert self._loop is not None
        payload = self.event()
        future = asyncio.run_coroutine_threadsafe(self._timed(payload), self._loop)
        elapsed, result = await asyncio.wrap_future(future)
        status, _, body = to_http(result)
        if status != 200:
            raise BenchError(f"direct GET /me: status {status}: {body[:300]!r}")
        return elapsed, body


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client: the gateway's cost without a client library's.

    httpx spends a few milliseconds of its own per request on this machine (see the
    httpx row of the overhead table); this client costs tens of microseconds, so
    what it measures beyond the direct invoke is the gateway's own work.
    """

    def __init__(self, base_url: str, path: str, headers: list[tuple[bytes, bytes]]) -> None:
        url = httpx.URL(base_url)
        self._host, self._port = url.host, url.port or 80
        lines = [f"GET {path} HTTP/1.1".encode(), *(k + b": " + v for k, v in headers)]
        self._request = b"\r\n".join(lines) + b"\r\n\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> RawHttp:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()

    async def get(self) -> tuple[int, dict[str, str], bytes]:
        """Send the request; the status, headers and body of the answer."""
        assert self._reader is not None and self._writer is not None
        self._writer.write(self._request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        body = await self._reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split(" ", 2)[1]), headers, body


@dataclass
class Overhead:
    """The sequential samples (ms) of GET /me by each path."""

    raw: Samples = field(default_factory=lambda: Samples("GET /me (minimal client)"))
    httpx: Samples = field(default_factory=lambda: Samples("GET /me (httpx)"))
    direct_ms: list[float] = field(default_factory=list)


async def _overhead(
    client: httpx.AsyncClient, raw: RawHttp, direct: Direct, auth: dict[str, str], samples: int
) -> Overhead:
    """Sequential rounds of the three paths, in a shuffled order each round."""
    out = Overhead()

    async def via_raw() -> bytes:
        started = time.perf_counter()
        status, headers, body = await raw.get()
        elapsed = (time.perf_counter() - started) * 1000
        if status != 200:
            raise BenchError(f"GET /me (minimal client): HTTP {status}: {body[:300]!r}")
        out.raw.client_ms.append(elapsed)
        out.raw.request_ids.append(headers.get("apigw-requestid", ""))
        return body

    async def via_httpx() -> bytes:
        started = time.perf_counter()
        response = await client.get("/me", headers=auth)
        elapsed = (time.perf_counter() - started) * 1000
        _check(response, "GET /me")
        out.httpx.client_ms.append(elapsed)
        out.httpx.request_ids.append(response.headers.get("apigw-requestid", ""))
        return response.content

    async def via_direct() -> bytes:
        elapsed, body = await direct.invoke()
        out.direct_ms.append(elapsed)
        return body

    paths = [via_raw, via_httpx, via_direct]
    # Same handler, same answer: the direct path really is GET /me minus the gateway.
    answers = [json.loads(await path()) for path in paths]
    if any(a != answers[0] for a in answers):
        raise BenchError("the three paths of GET /me answer differently")
    for _ in range(20):  # warm the sequential paths
        for path in paths:
            await path()
    out = Overhead()  # drop the warm-up samples (the closures above read `out` anew)
    shuffle = random.Random(2026).shuffle  # a fixed order sequence: comparable runs
    started = time.perf_counter()
    for _ in range(samples):
        shuffle(paths)
        for path in paths:
            await path()
    out.raw.wall_s = out.httpx.wall_s = time.perf_counter() - started
    return out


async def _login_token(client: httpx.AsyncClient, email: str) -> str:
    response = await client.post("/auth/login", json={"email": email, "password": DEMO_PASSWORD})
    _check(response, f"POST /auth/login {email}")
    return str(response.json()["access_token"])


async def _run(local: LocalPlatform, args: argparse.Namespace) -> dict[str, Any]:
    capture = GatewayLog()
    uninstall = capture.install()
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    try:
        async with httpx.AsyncClient(
            base_url=local.endpoints.http_api, timeout=60, limits=limits, trust_env=False
        ) as client:
            token = await _login_token(client, MENTEES[0].email)
            auth = {"authorization": f"Bearer {token}"}
            emails = [p.email for p in PEOPLE]

            def login(i: int) -> Awaitable[httpx.Response]:
                body = {"email": emails[i % len(emails)], "password": DEMO_PASSWORD}
                return client.post("/auth/login", json=body)

            def me(_: int) -> Awaitable[httpx.Response]:
                return client.get("/me", headers=auth)

            def search(_: int) -> Awaitable[httpx.Response]:
                return client.get(SEARCH)

            operations = {
                "POST /auth/login": (login, args.login_requests),
                "GET /me": (me, args.requests),
                "GET /mentors (search)": (search, args.requests),
            }
            # Warm up: every sandbox of the pool started, every code path run.
            for send, _ in operations.values():
                await _load("warm-up", send, args.concurrency, args.concurrency)
            first = await client.get(SEARCH)
            _check(first, "GET /mentors")
            if not first.json()["items"]:
                raise BenchError("the mentor search found nobody: the demo data is missing")

            results = [
                await _load(name, send, count, args.concurrency)
                for name, (send, count) in operations.items()
            ]
            fn = local.runtime.find(FUNCTION)
            assert fn is not None
            workers = local.runtime.pool(fn).size

            direct = Direct(local, client, token)
            async with RawHttp(local.endpoints.http_api, "/me", direct.headers) as raw:
                overhead = await _overhead(client, raw, direct, auth, args.samples)
    finally:
        await asyncio.sleep(0.05)  # the last access log records
        uninstall()
    for samples in [*results, overhead.raw, overhead.httpx]:
        samples.gateway_ms = capture.take(samples.request_ids)
    return {"results": results, "overhead": overhead, "workers": workers}


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def _row(label: str, values: list[float]) -> list[object]:
    return [
        label,
        len(values),
        median(values),
        percentile(values, 95),
        percentile(values, 99),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300, help="per GET operation")
    parser.add_argument("--login-requests", type=int, default=60, help="of POST /auth/login")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument(
        "--samples", type=int, default=400, help="rounds of the three GET /me paths (overhead)"
    )
    parser.add_argument(
        "--overhead-client",
        choices=["raw", "httpx"],
        default="raw",
        help="which client's GET /me the overhead figure uses (default: raw, the minimal one)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as JSON on the last line"
    )
    args = parser.parse_args()

    # moto's werkzeug server logs every AWS call to stderr unless told otherwise
    # (``python -m local_runtime up`` quiets it the same way).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="lwm-bench-"))
    root.chmod(0o755)  # the cluster's folder must be reachable by the postgres user
    environment = {FUNCTION: {"LWM_RATE_LIMITS": json.dumps(RATE_LIMITS)}}
    started = time.perf_counter()
    try:
        with LocalPlatform(
            ports=Ports.ephemeral(), pg_dir=root / "pg", environment=environment
        ) as local:
            up_s = time.perf_counter() - started
            seed(local.endpoints.http_api, local.endpoints.aws)
            seeded_s = time.perf_counter() - started
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                out = runner.run(_run(local, args))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    total_s = time.perf_counter() - started

    print(
        f"platform up in {up_s:.1f} s, demo data in {seeded_s - up_s:.1f} s; "
        f"{out['workers']} warm {FUNCTION} sandboxes"
    )
    print(f"latency under {args.concurrency} concurrent clients (httpx, ms, client-side):")
    rows = []
    p99: dict[str, float] = {}
    for s in out["results"]:
        p99[s.name] = round(percentile(s.client_ms, 99), 2)
        rows.append(
            [
                *_row(s.name, s.client_ms),
                max(s.client_ms),
                median(s.gateway_ms),
                len(s.client_ms) / s.wall_s,
            ]
        )
    print_table(["operation", "requests", "p50", "p95", "p99", "max", "in-app p50", "req/s"], rows)

    o: Overhead = out["overhead"]
    direct_p50 = median(o.direct_ms)
    raw_p50, httpx_p50 = median(o.raw.client_ms), median(o.httpx.client_ms)
    app_p50 = median(o.raw.gateway_ms)
    print()
    print(f"gateway overhead: {args.samples} rounds, concurrency 1, paths shuffled per round (ms):")
    print_table(
        ["path", "samples", "p50", "p95", "p99", "p50 - direct"],
        [
            [*_row("direct: runtime.invoke, same event", o.direct_ms), 0.0],
            [*_row("gateway, minimal HTTP/1.1 client", o.raw.client_ms), raw_p50 - direct_p50],
            [*_row("  of which in the gateway app", o.raw.gateway_ms), app_p50 - direct_p50],
            [*_row("gateway, httpx.AsyncClient", o.httpx.client_ms), httpx_p50 - direct_p50],
        ],
    )
    print(
        f"  gateway app {app_p50 - direct_p50:.2f} ms + uvicorn/loopback "
        f"{raw_p50 - app_p50:.2f} ms; httpx itself adds {httpx_p50 - raw_p50:.2f} ms"
    )
    chosen = o.raw if args.overhead_client == "raw" else o.httpx
    paired = median([g - d for g, d in zip(chosen.client_ms, o.direct_ms, strict=True)])
    print(
        f"  noise check: median of the per-round differences "
        f"({args.overhead_client} - direct) {paired:.2f} ms"
    )
    overhead = round(median(chosen.client_ms) - direct_p50, 2)
    met = overhead <= TARGET_OVERHEAD_MS
    print(
        f"gateway_overhead_p50_ms = {overhead:.2f} ({args.overhead_client} client; target <= "
        f"{TARGET_OVERHEAD_MS:.0f} ms): {'met' if met else 'NOT met'}"
    )
    print(f"total run time {total_s:.1f} s")
    if args.json:
        emit_json({"p99_ms": p99, "gateway_overhead_p50_ms": overhead})


if __name__ == "__main__":
    main()
