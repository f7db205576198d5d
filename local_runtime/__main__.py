"""The local runtime's command line.

python -m local_runtime up [--seed]     run the platform until Ctrl-C or SIGTERM
python -m local_runtime mail [--to X]   the email the platform sent (running stack)
python -m local_runtime openapi         print the OpenAPI document of every service
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from types import FrameType

from local_runtime import config, mailbox, seed
from local_runtime.platform import LocalPlatform

log = logging.getLogger("local_runtime")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m local_runtime",
        description="Run LinkWithMentor on 127.0.0.1: AWS endpoint, PostgreSQL, functions, "
        "HTTP API, WebSocket API. Ports: "
        + ", ".join(
            (
                config.ENV_HTTP_PORT,
                config.ENV_WS_PORT,
                config.ENV_AWS_PORT,
                config.ENV_LAMBDA_PORT,
                config.ENV_PG_PORT,
            )
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start everything and wait for Ctrl-C")
    up.add_argument("--seed", action="store_true", help="load the demo data once started")
    mail = commands.add_parser("mail", help="show the email sent so far (needs `up` running)")
    mail.add_argument("--to", help="only messages to this address")
    mail.add_argument("--last", type=int, default=5, help="how many messages (newest last)")
    commands.add_parser("openapi", help="print the merged OpenAPI document as JSON")
    return parser


def show_mail(to: str | None, last: int) -> int:
    """Print the newest messages of the local mailbox (SES on the local AWS endpoint)."""
    if not config.ENDPOINTS_FILE.exists():
        print(f"no running platform: {config.ENDPOINTS_FILE} is missing (run `make dev`)")
        return 1
    aws = json.loads(config.ENDPOINTS_FILE.read_text())["aws"]
    mails = mailbox.read_mailbox(aws, to)[-last:] if last > 0 else []
    if not mails:
        print("no mail" + (f" to {to}" if to else ""))
    for mail in mails:
        print(f"--- {mail.id}\nFrom: {mail.sender}\nTo: {', '.join(mail.to)}")
        print(f"Subject: {mail.subject}\n\n{mail.body.rstrip()}\n")
    return 0


def print_openapi() -> int:
    """Write the OpenAPI document to stdout (``make openapi`` stores it in docs/)."""
    from blueprint import PLATFORM
    from local_runtime.openapi import build_document

    print(json.dumps(build_document(PLATFORM), indent=2, sort_keys=False))
    return 0


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
        for key in ("http_api", "websocket", "aws", "lambda", "database_url", "issuer", "audience"):
            log.info("  %-13s %s", key, doc[key])
        if doc["websocket"]:
            ws_port = doc["websocket"].rpartition(":")[2]
            log.info("  %-13s %s", "@connections", config.url(int(ws_port)))
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
    if args.command != "up":
        return show_mail(args.to, args.last) if args.command == "mail" else print_openapi()
    _configure_logging()
    if args.command == "up":
        return up(args.seed)
    if args.command == "mail":
        return show_mail(args.to, args.last)
    if args.command == "openapi":
        return print_openapi()
    return 2  # pragma: no cover - argparse rejects other commands


if __name__ == "__main__":
    sys.exit(main())
