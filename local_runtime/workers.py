"""Worker processes running real handlers under ``awslambdaric``, one pool per function.

A worker is a local Lambda sandbox: ``python -m awslambdaric <handler>`` with the
function's own environment, talking to its own :class:`RuntimeApi`. A pool
starts workers lazily on the first invoke, keeps them warm, adds one when every
worker is busy (up to ``fn.local_workers``), gives each worker one invocation
at a time, and replaces a worker that crashed or overran its timeout.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from blueprint.model import Function, Platform
from local_runtime import config
from local_runtime.runtime_api import (
    Exited,
    FunctionError,
    InitError,
    Invocation,
    Outcome,
    Response,
    RuntimeApi,
)

log = logging.getLogger("local_runtime.workers")

INIT_TIMEOUT_S = 10.0  # Lambda's limit on the init phase (locally raised to fn.timeout_s if longer)
STOP_GRACE_S = 1.0


def new_trace_id() -> str:
    """An X-Ray trace header value, as Lambda passes one to every invocation."""
    root = f"1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
    return f"Root={root};Parent={uuid.uuid4().hex[:16]};Sampled=0"


@dataclass(frozen=True)
class InvokeRequest:
    """One synchronous invocation of a function."""

    payload: bytes
    client_context: str | None = None  # JSON text, as boto3 sends it (base64-decoded)
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    trace_id: str = field(default_factory=new_trace_id)


@dataclass(frozen=True)
class InvokeResult:
    """What Lambda's Invoke API answers: the payload, whether it is an error, the logs."""

    request_id: str
    payload: bytes
    function_error: bool
    logs: str

    def json(self) -> object:
        """The payload, parsed."""
        return json.loads(self.payload)


class RuntimeStoppedError(RuntimeError):
    """The local runtime is shutting down and takes no more invocations."""


def _error(error_type: str, message: str) -> bytes:
    return json.dumps({"errorType": error_type, "errorMessage": message}).encode()


def _exit_error(request_id: str, returncode: int) -> bytes:
    status = (
        f"signal: {_signal_name(-returncode)}" if returncode < 0 else f"exit status {returncode}"
    )
    return _error(
        "Runtime.ExitError", f"RequestId: {request_id} Error: Runtime exited with error: {status}"
    )


def _signal_name(number: int) -> str:
    try:
        return {signal.SIGKILL: "killed", signal.SIGTERM: "terminated"}.get(
            signal.Signals(number), signal.Signals(number).name.lower()
        )
    except ValueError:
        return str(number)


def _max_memory_mb(pid: int) -> int:
    """The process's peak resident memory (``VmHWM``), as REPORT's "Max Memory Used"."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return math.ceil(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return 0


def sandbox_environment(
    fn: Function, physical_name: str, python_path: Sequence[Path]
) -> dict[str, str]:
    """The variables Lambda itself sets in a sandbox, with local values.

    The worker does not inherit the caller's environment: like a sandbox, it
    sees only these and the function's declared environment. The AWS config
    files are pointed at ``/dev/null`` so that a developer's real profile can
    never reach a local handler.
    """
    now = datetime.now(UTC)
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "PYTHONPATH": os.pathsep.join(str(p) for p in python_path),
        "PYTHONUNBUFFERED": "1",
        "LAMBDA_TASK_ROOT": str(config.REPO_ROOT),
        "_HANDLER": fn.handler,
        "AWS_LAMBDA_FUNCTION_NAME": physical_name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{physical_name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{now:%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
        "AWS_REGION": config.REGION,
        "AWS_DEFAULT_REGION": config.REGION,
        "AWS_ACCESS_KEY_ID": config.ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": config.SECRET_ACCESS_KEY,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
    }


@dataclass(frozen=True)
class WorkerSpec:
    """Everything needed to start a sandbox for one function."""

    fn: Function
    physical_name: str
    environment: Mapping[str, str]

    @property
    def arn(self) -> str:
        return config.function_arn(self.physical_name)

    @property
    def init_timeout_s(self) -> float:
        return max(INIT_TIMEOUT_S, float(self.fn.timeout_s))


class Worker:
    """One sandbox: an ``awslambdaric`` process and its Runtime API."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._api: RuntimeApi | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._spawned_at = 0.0
        self._init_ms: float | None = None  # reported once, on the first invocation
        self._tail: list[str] | None = None  # log lines of the invocation in flight
        self._tasks: list[asyncio.Task[None]] = []
        self._peak_mb = 0  # last known peak memory, for the REPORT of a killed worker
        self.alive = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        """Start the process; its init phase runs while the first invocation waits."""
        self._api = RuntimeApi()
        address = await self._api.start()
        env = {**self.spec.environment, "AWS_LAMBDA_RUNTIME_API": address}
        self._spawned_at = time.monotonic()
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "awslambdaric",
            self.spec.fn.handler,
            env=env,
            cwd=config.REPO_ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the runtime only; it stops workers itself
        )
        self.alive = True
        self._api.ready.add_done_callback(self._record_init)
        self._tasks = [
            asyncio.create_task(self._forward_output(), name=f"{self.spec.fn.name}-output"),
            asyncio.create_task(self._watch_exit(), name=f"{self.spec.fn.name}-exit"),
        ]

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Run one invocation, enforcing the init limit and the function's timeout."""
        api = self._api
        assert api is not None, "start() first"
        self._tail = []
        if api.ready.done():
            ready = api.ready.result()
        else:
            try:
                ready = await asyncio.wait_for(asyncio.shield(api.ready), self.spec.init_timeout_s)
            except TimeoutError:
                await self.kill()
                failure = self._timed_out(request, self.spec.init_timeout_s)
                return self._finish(request, failure, 0.0, "timeout")
        if isinstance(ready, InitError | Exited):
            self.alive = False  # the runtime exits after reporting an init error
            return self._finish(request, ready, 0.0, "error")

        timeout = float(self.spec.fn.timeout_s)
        self._tail.append(f"START RequestId: {request.request_id} Version: $LATEST")
        started = time.monotonic()
        outcome_future = api.deliver(
            Invocation(
                request_id=request.request_id,
                payload=request.payload,
                deadline_ms=int(time.time() * 1000 + timeout * 1000),
                function_arn=self.spec.arn,
                trace_id=request.trace_id,
                client_context=request.client_context,
            )
        )
        try:
            async with asyncio.timeout(timeout):
                outcome = await outcome_future
        except TimeoutError:
            await self.kill()
            return self._finish(
                request, self._timed_out(request, timeout), timeout * 1000, "timeout"
            )
        duration_ms = (time.monotonic() - started) * 1000
        if isinstance(outcome, Exited):
            self.alive = False
            return self._finish(request, outcome, duration_ms, "error")
        await self._catch_up_output()
        return self._finish(request, outcome, duration_ms)

    async def kill(self) -> None:
        """End the process at once (timeouts) and wait for it."""
        if self._process is not None and self._process.returncode is None:
            self._peak_mb = _max_memory_mb(self._process.pid)
            self._process.kill()
        await self._wait_exited()

    async def stop(self) -> None:
        """End the process: SIGTERM, then SIGKILL after a grace period."""
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), STOP_GRACE_S)
            except TimeoutError:
                self._process.kill()
        await self._wait_exited()

    # --- internals ------------------------------------------------------------

    def _timed_out(self, request: InvokeRequest, seconds: float) -> FunctionError:
        message = f"Task timed out after {seconds:.2f} seconds"
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._line(f"{stamp} {request.request_id} {message}")
        return FunctionError(
            _error("Sandbox.Timedout", f"RequestId: {request.request_id} Error: {message}")
        )

    def _finish(
        self,
        request: InvokeRequest,
        outcome: Outcome,
        duration_ms: float,
        status: str | None = None,
    ) -> InvokeResult:
        if isinstance(outcome, Response):
            payload, errored = outcome.payload, False
        elif isinstance(outcome, Exited):
            payload, errored = _exit_error(request.request_id, outcome.returncode), True
        else:
            payload, errored = outcome.payload, True
        report = self._report(request.request_id, duration_ms, status)
        tail = self._tail or []
        tail += [f"END RequestId: {request.request_id}", report]
        self._tail = None
        log.info("[%s] %s", self.spec.fn.name, report)
        return InvokeResult(request.request_id, payload, errored, "\n".join(tail) + "\n")

    def _report(self, request_id: str, duration_ms: float, status: str | None) -> str:
        parts = [
            f"REPORT RequestId: {request_id}",
            f"Duration: {duration_ms:.2f} ms",
            f"Billed Duration: {math.ceil(duration_ms)} ms",
            f"Memory Size: {self.spec.fn.memory_mb} MB",
            f"Max Memory Used: {self._max_memory_mb()} MB",
        ]
        if self._init_ms is not None:
            parts.append(f"Init Duration: {self._init_ms:.2f} ms")
            self._init_ms = None
        if status:
            parts.append(f"Status: {status}")
        return "\t".join(parts)

    def _max_memory_mb(self) -> int:
        if self._process is not None and self._process.returncode is None:
            self._peak_mb = _max_memory_mb(self._process.pid) or self._peak_mb
        return self._peak_mb

    async def _catch_up_output(self) -> None:
        # The handler printed before it posted its result: two loop turns let the
        # output reader pick those lines up, so that the tail log holds them.
        for _ in range(2):
            await asyncio.sleep(0)

    def _record_init(self, _: object) -> None:
        self._init_ms = (time.monotonic() - self._spawned_at) * 1000

    def _line(self, line: str) -> None:
        log.info("[%s] %s", self.spec.fn.name, line)
        if self._tail is not None:
            self._tail.append(line)

    async def _forward_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        stream = self._process.stdout
        pending = b""
        while chunk := await stream.read(65536):
            # awslambdaric ends the lines of one error record with "\r": show each on its own.
            *lines, pending = (pending + chunk).replace(b"\r", b"\n").split(b"\n")
            for line in lines:
                if line.strip():
                    self._line(line.decode(errors="replace").rstrip())
        if pending.strip():
            self._line(pending.decode(errors="replace").rstrip())

    async def _watch_exit(self) -> None:
        assert self._process is not None and self._api is not None
        returncode = await self._process.wait()
        self.alive = False
        self._api.process_exited(returncode)
        await self._api.close()

    async def _wait_exited(self) -> None:
        self.alive = False
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class FunctionPool:
    """The warm workers of one function, at most ``fn.local_workers`` of them."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._workers: set[Worker] = set()
        self._idle: list[Worker] = []  # most recently used last: reused first, like Lambda
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._tasks: set[asyncio.Task[InvokeResult]] = set()
        self._closed = False

    @property
    def size(self) -> int:
        """Workers started and not yet ended."""
        return len(self._workers)

    def pids(self) -> set[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return {w.pid for w in self._workers if w.alive and w.pid is not None}

    async def invoke(self, request: InvokeRequest) -> InvokeResult:
        """Run ``request`` on a free worker, starting one if all are busy and room is left.

        A caller that stops waiting (client gone, gateway timeout) does not
        cancel the invocation: like in Lambda, the function runs to its end.
        """
        task = asyncio.create_task(self._invoke(request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(task)

    async def close(self) -> None:
        """Refuse new invocations and end every worker."""
        self._closed = True
        while self._waiters:
            self._wake()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*(w.stop() for w in list(self._workers)), return_exceptions=True)
        self._workers.clear()
        self._idle.clear()

    async def _invoke(self, request: InvokeRequest) -> InvokeResult:
        worker = await self._acquire()
        try:
            return await worker.invoke(request)
        finally:
            self._release(worker)

    async def _acquire(self) -> Worker:
        while True:
            if self._closed:
                raise RuntimeStoppedError(f"{self.spec.fn.name}: the local runtime is stopping")
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    return worker
                self._workers.discard(worker)
            if len(self._workers) < self.spec.fn.local_workers:
                worker = Worker(self.spec)
                self._workers.add(worker)  # reserve the slot before the await
                try:
                    await worker.start()
                except BaseException:
                    self._workers.discard(worker)
                    raise
                return worker
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def _release(self, worker: Worker) -> None:
        if worker.alive and not self._closed:
            self._idle.append(worker)
        else:
            self._workers.discard(worker)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class LambdaRuntime:
    """Every declared function, each with its own pool, found by name or ARN."""

    def __init__(
        self,
        platform: Platform,
        environment: Callable[[Function], Mapping[str, str]],
        python_path: Sequence[Path],
    ) -> None:
        self._platform = platform
        self._environment = environment
        self._python_path = tuple(python_path)
        self._pools: dict[str, FunctionPool] = {}
        self._names: dict[str, Function] = {}
        for fn in platform.functions():
            physical = config.physical_name(fn.name)
            for key in (fn.name, physical, config.function_arn(physical)):
                self._names[key] = fn

    def find(self, name_or_arn: str) -> Function | None:
        """The function called ``name_or_arn``: logical or physical name, ARN, ``name:version``."""
        fn = self._names.get(name_or_arn)
        if fn is None and ":" in name_or_arn:
            head, _, qualifier = name_or_arn.rpartition(":")
            if qualifier in ("$LATEST", "live") or qualifier.isdigit():
                fn = self._names.get(head)
        return fn

    def pool(self, fn: Function) -> FunctionPool:
        """The pool of ``fn``, created on first use."""
        pool = self._pools.get(fn.name)
        if pool is None:
            physical = config.physical_name(fn.name)
            env = {
                **sandbox_environment(fn, physical, self._python_path),
                **self._environment(fn),
            }
            pool = self._pools[fn.name] = FunctionPool(WorkerSpec(fn, physical, env))
        return pool

    async def invoke(self, fn: Function, request: InvokeRequest) -> InvokeResult:
        """Invoke ``fn`` synchronously (RequestResponse)."""
        return await self.pool(fn).invoke(request)

    async def retire(self, fn: Function) -> None:
        """End the workers of ``fn``; its next invocation starts a fresh pool."""
        pool = self._pools.pop(fn.name, None)
        if pool is not None:
            await pool.close()

    async def close(self) -> None:
        """End every worker of every function."""
        await asyncio.gather(*(p.close() for p in self._pools.values()), return_exceptions=True)
        self._pools.clear()
