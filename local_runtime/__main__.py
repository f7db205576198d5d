"""``python -m local_runtime up [--seed]``: run the platform locally until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from local_runtime import config, seed
from local_runtime.platform import LocalPlatform

log = logging.getLogger("local_runtime")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local_runtime",
        description="Run LinkWithMentor on 127.0.0.1: AWS endpoint, PostgreSQL, functions, "
        "HTTP API. Ports: "
        + ", ".join(
            (config.ENV_HTTP_PORT, config.ENV_AWS_PORT, config.ENV_LAMBDA_PORT, config.ENV_PG_PORT)
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything and wait for Ctrl-C")
    up.add_argument("--seed", action="store_true", help="load the demo data once started")
    return parser


def _configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s.%(msecs)03d %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stdout,
    )
    for noisy in ("werkzeug", "botocore", "urllib3", "httpx", "uvicorn.error"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def up(with_seed: bool) -> int:
    """Start the platform, print where it listens, and run until asked to stop."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second Ctrl-C: give up on a clean stop
            raise SystemExit(130)
        log.info("stopping (%s)…", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    started = time.perf_counter()
    local = LocalPlatform(endpoints_file=config.ENDPOINTS_FILE)
    endpoints = local.start()
    try:
        doc = endpoints.as_json()
        log.info("LinkWithMentor local runtime up in %.1f s", time.perf_counter() - started)
        for key in ("http_api", "aws", "lambda", "database_url", "issuer", "audience"):
            log.info("  %-13s %s", key, doc[key])
        log.info(
            "  %-13s %s (reserved, not served yet)",
            "websocket",
            config.url(local.ports.websocket, "ws"),
        )
        log.info("  endpoints written to %s; Ctrl-C stops", config.ENDPOINTS_FILE)
        if with_seed:
            seed.seed(doc)
        while not stop.wait(0.5):
            pass
    finally:
        local.stop()
        log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line entry point."""
    args = _parser().parse_args(argv)
    _configure_logging()
    if args.command == "up":
        return up(args.seed)
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
