"""How the local runtime's long-lived processes share their interpreter lock and collect garbage.

CPython's full (generation 2) collection walks every object the process keeps.
In moto's process (every item and stream record of every table) and in the
runtime's (the gateway, the worker pools, the stream poller) one took 40-85 ms
here, and every request that arrived meanwhile waited for it: the slowest sends
of the chat fan-out benchmark were such pauses. A Lambda sandbox lives minutes
and holds one request's objects; these processes live for a whole ``make dev``.

:class:`IdleCollector` leaves the young generations to CPython (their pauses
are a few milliseconds) and runs full collections itself, when CPython would
have run one (``gc.get_threshold()[2]`` younger collections since the last):
as soon as the process used under ``busy_share`` of a core over the last
``idle_s`` (so no request waits), or after ``max_interval_s`` whatever the load
(so cyclic garbage never piles up). :meth:`stop` gives CPython its own schedule
back.

:func:`acquire` also shortens the interpreter's switch interval (how long a
thread may keep the GIL while another waits) from CPython's 5 ms to 0.5 ms: in
the runtime's process the event loop (the gateways) waits behind the stream
poller's threads, and in moto's the server's loop behind its request threads;
with 5 ms turns a fan-out's tail grew by whole turns (p95 of a 10-member send
52 ms, 42 ms with 0.5 ms).
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time

log = logging.getLogger("local_runtime.idle_gc")

# CPython's full collections start when generation 1 has been collected this
# many times since the last one; this many never comes.
_NEVER = 1 << 30
_CPYTHON_FULL_THRESHOLD = 10  # CPython's default, when another collector set _NEVER


class IdleCollector:
    """Runs this process's full collections when it idles (one per process)."""

    def __init__(
        self, *, idle_s: float = 0.5, busy_share: float = 0.05, max_interval_s: float = 60.0
    ) -> None:
        self._idle_s = idle_s
        self._busy_share = busy_share
        self._max_interval_s = max_interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._thresholds = gc.get_threshold()
        self._due = _CPYTHON_FULL_THRESHOLD
        self.collections = 0  # full collections run so far (for tests and diagnostics)

    def start(self) -> None:
        """Take over full collections from CPython (idempotent)."""
        if self._thread is not None:
            return
        self._thresholds = gc.get_threshold()
        young, middle, full = self._thresholds
        self._due = full if full < _NEVER else _CPYTHON_FULL_THRESHOLD
        gc.set_threshold(young, middle, _NEVER)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="idle-gc", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Hand full collections back to CPython."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()
        gc.set_threshold(*self._thresholds)

    def _run(self) -> None:
        last = time.monotonic()
        cpu_before, wall_before = time.process_time(), time.monotonic()
        while not self._stop.wait(self._idle_s):
            cpu, wall = time.process_time(), time.monotonic()
            share = (cpu - cpu_before) / max(wall - wall_before, 1e-6)
            cpu_before, wall_before = cpu, wall
            # CPython's own schedule for when one is due; a quiet stack collects nothing
            due = gc.get_count()[2] >= self._due
            overdue = wall - last >= self._max_interval_s and gc.get_count()[2] > 0
            if (due and share < self._busy_share) or overdue:
                started = time.perf_counter()
                gc.collect()
                self.collections += 1
                last = time.monotonic()
                cpu_before, wall_before = time.process_time(), last  # not counted as load
                log.debug("full collection in %.1f ms", (time.perf_counter() - started) * 1000)


SWITCH_INTERVAL_S = 0.0005

_shared: IdleCollector | None = None
_users = 0
_shared_lock = threading.Lock()
_switch_interval = sys.getswitchinterval()


def acquire() -> None:
    """Use the process's collector and switch interval (set by the first user; several
    platforms may share one process, as in the tests)."""
    global _shared, _users, _switch_interval
    with _shared_lock:
        if _shared is None:
            _shared = IdleCollector()
            _shared.start()
            _switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        _users += 1


def release() -> None:
    """Stop using it; the last user hands full collections back to CPython."""
    global _shared, _users
    with _shared_lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and _shared is not None:
            _shared.stop()
            _shared = None
            sys.setswitchinterval(_switch_interval)
