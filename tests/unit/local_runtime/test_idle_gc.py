"""Full collections of the runtime's processes wait for an idle moment, and are undone on stop."""

from __future__ import annotations

import gc
import time

import pytest

from local_runtime.idle_gc import IdleCollector


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _make_garbage(n: int = 200_000) -> None:
    for _ in range(n):
        _Cycle()


def _wait_for(predicate: object, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


def test_cpython_runs_no_full_collection_while_the_collector_owns_them() -> None:
    before = gc.get_threshold()
    collector = IdleCollector(idle_s=0.05)
    collector.start()
    try:
        young, middle, full = gc.get_threshold()
        assert (young, middle) == before[:2] and full > 10**6
    finally:
        collector.stop()
    assert gc.get_threshold() == before


def test_a_due_full_collection_runs_once_the_process_idles() -> None:
    # (a platform of this test process may run its own collector: either one may collect)
    full: list[float] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(time.monotonic())

    gc.collect()
    collector = IdleCollector(idle_s=0.05, max_interval_s=3600)
    collector.start()
    gc.callbacks.append(seen)
    try:
        _make_garbage()  # enough younger collections for a full one to be due
        busy_until = time.monotonic()
        assert _wait_for(lambda: bool(full))
        assert full[0] >= busy_until  # not while the garbage was being made
    finally:
        gc.callbacks.remove(seen)
        collector.stop()


def test_platforms_of_one_process_share_one_collector() -> None:
    import sys

    from local_runtime import idle_gc

    before, switch = gc.get_threshold(), sys.getswitchinterval()
    idle_gc.acquire()
    idle_gc.acquire()
    idle_gc.release()
    assert gc.get_threshold()[2] > 10**6  # still held by the other user
    assert sys.getswitchinterval() == pytest.approx(idle_gc.SWITCH_INTERVAL_S)
    idle_gc.release()
    assert gc.get_threshold() == before
    assert sys.getswitchinterval() == pytest.approx(switch)


def test_nothing_is_collected_while_busy_until_overdue() -> None:
    collector = IdleCollector(idle_s=0.05, busy_share=0.0, max_interval_s=0.5)
    collector.start()
    try:
        _make_garbage()
        time.sleep(0.2)
        assert collector.collections == 0  # never idle enough (busy_share 0)

        def under_load() -> bool:
            _make_garbage(20_000)  # constant load: garbage keeps coming
            return collector.collections >= 1

        assert _wait_for(under_load)  # overdue: collected anyway
    finally:
        collector.stop()


def test_a_quiet_process_collects_nothing() -> None:
    gc.collect()
    collector = IdleCollector(idle_s=0.02, max_interval_s=0.1)
    collector.start()
    try:
        time.sleep(0.3)
        assert collector.collections == 0
    finally:
        collector.stop()
