#!/usr/bin/env python3
"""CDK entry point: ``npx cdk synth -c stage=prod`` or ``python app.py``; offline, no AWS calls."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# lwm_core lives in the shared layer's folder, as it does for pytest (pyproject pythonpath).
_ROOT = Path(__file__).resolve().parent
for _path in (_ROOT, _ROOT / "layers" / "core"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from infra_cdk.app_factory import build_app  # noqa: E402 - needs the paths above


def main() -> None:
    # The CLI sets CDK_OUTDIR; a plain `python app.py` writes cdk.out like the CLI would.
    outdir = None if os.environ.get("CDK_OUTDIR") else "cdk.out"
    app, *_ = build_app(outdir=outdir)
    app.synth()


if __name__ == "__main__":
    main()
