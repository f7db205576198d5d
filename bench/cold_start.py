"""Cold start: time to import each function's handler module in a fresh interpreter.

Each figure is the median of several fresh interpreters, compared with a fresh
interpreter running ``import boto3`` measured in the same run (the ratio).
Each handler runs with its function's own static environment (as in its
sandbox); a first untimed import of each module writes its bytecode, as a
deployed bundle carries it. Target: max_ratio <= 2.0.

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

_PROBE = "import time; t=time.perf_counter(); import {module}; print(time.perf_counter()-t)"


def import_time(module: str, environment: dict[str, str] | None = None) -> float:
    """Seconds to import ``module`` in a new interpreter (interpreter start excluded).

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
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=9)
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
    samples: dict[str, list[float]] = {ref: [] for ref in references}
    samples.update({name: [] for name in modules})
    for _ in range(args.runs):  # interleave so background noise hits all alike
        for ref, module in references.items():
            samples[ref].append(import_time(module))
        for name, module in modules.items():
            samples[name].append(import_time(module, envs[name]))
    baseline = median(samples["boto3"])
    ratios = {name: median(samples[name]) / baseline for name in modules}
    floor = median(samples["fastapi"])
    rows = [
        ["import boto3 (baseline)", baseline * 1000, 1.0],
        ["import fastapi, mangum (REST floor)", floor * 1000, floor / baseline],
    ]
    rows += [
        [f"{name} ({modules[name]})", median(samples[name]) * 1000, ratios[name]]
        for name in modules
    ]
    print(f"cold start: median of {args.runs} fresh interpreters per module")
    print_table(["module", "import ms", "ratio to boto3"], rows)
    worst = max(ratios.values())
    print(f"max_ratio = {worst:.2f} (target <= 2.0)")
    if args.json:
        emit_json(
            {"max_ratio": round(worst, 3), "functions": {k: round(v, 3) for k, v in ratios.items()}}
        )


if __name__ == "__main__":
    main()
