"""Cold start: time to import each function's handler module in a fresh interpreter.

Each figure is the median of several fresh interpreters, compared with a fresh
interpreter running ``import boto3`` measured in the same run (the ratio).
Each handler runs with its function's own static environment (as in its
sandbox); a first untimed import of each module writes its bytecode, as a
deployed bundle carries it. The ratio is taken on the CPU time of the import
(wall time is shown beside it): on a shared machine wall time also counts the
waits for a core; each ratio is the median of the per-round ratios against the
baseline measured in the same round, since this machine's speed drifts.
Target: max_ratio <= 2.0.

    python bench/cold_start.py [--runs 9] [--json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "layers" / "core"), str(ROOT / "bench")]

from _common import emit_json, median, print_table  # noqa: E402

from blueprint import PLATFORM  # noqa: E402
from blueprint.environment import static_environment  # noqa: E402

_PROBE = (
    "import time; w=time.perf_counter(); c=time.process_time(); import {module}; "
    "print(time.perf_counter()-w, time.process_time()-c)"
)


def import_time(module: str, environment: dict[str, str] | None = None) -> tuple[float, float]:
    """Seconds (wall, CPU) to import ``module`` in a new interpreter (its start excluded).

    ``environment``: the function's own variables, as its sandbox has them.
    """
    env = {
        **os.environ,
        **(environment or {}),
        "PYTHONPATH": f"{ROOT}:{ROOT / 'layers' / 'core'}",
    }
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument(
        "--json", action="store_true", help="print the figures as JSON on the last line"
    )
    args = parser.parse_args()

    modules = {fn.name: fn.module for fn in PLATFORM.functions()}
    envs = {fn.name: static_environment(fn) for fn in PLATFORM.functions()}
    # Reference points: the baseline, and the web framework every REST function imports
    # (what a handler costs at the least before any of its own code).
    references = {"boto3": "boto3", "fastapi": "fastapi, mangum"}
    for module in references.values():  # warm the bytecode cache once
        import_time(module)
    for name, module in modules.items():
        import_time(module, envs[name])
    names = [*references, *modules]
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(args.runs):  # interleave so background noise hits all alike
        for name in names:
            module = references.get(name) or modules[name]
            w, c = import_time(module, envs.get(name))
            wall[name].append(w)
            cpu[name].append(c)
    # Ratios on CPU time (an import is CPU-bound work), taken round by round against the
    # baseline of the same round, then the median: a shared machine's speed drifts
    # during a run, and a ratio of two medians would count that drift.
    ratios = {
        name: median([c / b for c, b in zip(cpu[name], cpu["boto3"], strict=True)])
        for name in names
    }
    labels = {
        "boto3": "import boto3 (baseline)",
        "fastapi": "import fastapi, mangum (REST floor)",
        **{name: f"{name} ({module})" for name, module in modules.items()},
    }
    rows = [
        [labels[name], median(cpu[name]) * 1000, median(wall[name]) * 1000, ratios[name]]
        for name in names
    ]
    print(f"cold start: median of {args.runs} fresh interpreters per module")
    print_table(["module", "import CPU ms", "import wall ms", "ratio to boto3 (CPU)"], rows)
    worst = max(ratios[name] for name in modules)
    print(f"max_ratio = {worst:.2f} (target <= 2.0)")
    if args.json:
        emit_json(
            {"max_ratio": round(worst, 3), "functions": {k: round(ratios[k], 3) for k in modules}}
        )


if __name__ == "__main__":
    main()
