"""Table streams on the local stack: write -> handler latency, burst drain time, idle CPU.

A platform of its own (one table with a stream feeding the recording handler of
``tests/e2e/stream_handlers``, no PostgreSQL) on free ports:

* latency: ``--writes`` single ``PutItem`` calls, each after the previous record
  was handled and a random part of a poll interval; for each, the time from just
  before the write to the start of the handler (both clocks of this machine);
* drain: ``--burst`` writes as fast as one client makes them; the time from the
  first write to the start of the invocation that holds the last record, and the
  number of invocations (batches) it took;
* idle CPU: the share of one core that the runtime's process and moto's process
  use over ``--idle-s`` seconds with nothing written (the poller's cost).

    python bench/stream_latency.py [--writes 50] [--burst 200] [--poll-ms 50] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "core"), str(ROOT / "bench")]

import boto3  # noqa: E402
from _common import emit_json, median, percentile, print_table  # noqa: E402

from blueprint.model import Function, KeyAttr, Platform, Table, TableStream  # noqa: E402
from local_runtime import LocalPlatform  # noqa: E402
from local_runtime.config import Ports, physical_name  # noqa: E402
from local_runtime.streams import PollerSettings  # noqa: E402

TABLE = Table("bench-stream", KeyAttr("pk"), KeyAttr("sk"), stream="NEW_AND_OLD_IMAGES")
RECORDER = Function(
    name="bench-stream-recorder",
    handler="stream_handlers.recorder.handler",
    description="Records the batches of the bench stream",
    memory_mb=128,
    timeout_s=10,
    local_workers=1,
)
PLATFORM = Platform(
    services=(),
    tables=(TABLE,),
    workers=(RECORDER,),
    streams=(TableStream(table=TABLE.name, function=RECORDER.name, batch_size=100),),
)
TIMEOUT_S = 30.0
# moto accepts any credentials; these name the benchmark in its logs.
LOCAL_KEYS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _invocations(out: Path) -> list[dict[str, Any]]:
    path = out / f"{physical_name(RECORDER.name)}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _started(out: Path, pk: str) -> float:
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        for invocation in _invocations(out):
            if any(r["dynamodb"]["Keys"]["pk"]["S"] == pk for r in invocation["event"]["Records"]):
                return float(invocation["started"])
        time.sleep(0.002)
    raise TimeoutError(f"{pk} was not handled within {TIMEOUT_S} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=50)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--poll-ms", type=float, default=50.0)
    parser.add_argument("--idle-s", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="lwm-bench-stream-"))
    local = LocalPlatform(
        platform=PLATFORM,
        ports=Ports.ephemeral(),
        postgres=False,
        python_path=[ROOT / "tests" / "e2e"],
        environment={RECORDER.name: {"STREAM_TEST_OUT": str(out)}},
        stream_settings=PollerSettings(poll_interval_s=args.poll_ms / 1000),
    )
    with local:
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=local.endpoints.aws,
            region_name="us-east-1",
            **LOCAL_KEYS,
        )
        table = local.endpoints.resources.tables[TABLE.name]

        def put(pk: str) -> None:
            ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": "v"}})

        put("warm-up")  # the worker's cold start is not what this measures
        _started(out, "warm-up")
        latencies = []
        for i in range(args.writes):
            # Writes land at random points of the poll cycle, as a user's would.
            time.sleep(random.uniform(0, args.poll_ms / 1000))
            written = time.time()
            put(f"latency-{i}")
            latencies.append((_started(out, f"latency-{i}") - written) * 1000)

        before = len(_invocations(out))
        first = time.time()
        for i in range(args.burst):
            put(f"burst-{i}")
        drained = (_started(out, f"burst-{args.burst - 1}") - first) * 1000
        batches = len(_invocations(out)) - before

        children = subprocess.run(
            ["pgrep", "-P", str(os.getpid())], capture_output=True, text=True, check=False
        ).stdout.split()
        pids = [os.getpid(), *map(int, children)]
        time.sleep(1.0)  # let the last invocation's work settle
        start = {pid: _cpu_seconds(pid) for pid in pids}
        time.sleep(args.idle_s)
        idle_pct = sum(_cpu_seconds(pid) - start[pid] for pid in pids) / args.idle_s * 100

    figures = {
        "poll_ms": args.poll_ms,
        "latency_p50_ms": round(median(latencies), 1),
        "latency_p95_ms": round(percentile(latencies, 95), 1),
        "latency_max_ms": round(max(latencies), 1),
        "burst_records": args.burst,
        "burst_drain_ms": round(drained, 1),
        "burst_batches": batches,
        "idle_cpu_pct_of_core": round(idle_pct, 1),
    }
    print_table(["figure", "value"], [[k, v] for k, v in figures.items()])
    if args.json:
        emit_json(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
