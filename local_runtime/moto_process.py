"""The local AWS endpoint's own process: moto's server plus the Lambda seam.

    python -m local_runtime.moto_process --port 4566 --lambda-endpoint URL --function NAME ...

moto answers every AWS call in Python; in the runtime's process it would
share one interpreter lock with the gateway and the Invoke API, and every
request would wait for the others. In a process of its own it runs beside
them. The seam (:mod:`local_runtime.lambda_seam`) must patch moto's Lambda
model where moto runs, so it is applied here, for the functions named on the
command line, with the repairs to moto's dispatch (:mod:`local_runtime.moto_dispatch`),
DynamoDB (:mod:`local_runtime.moto_dynamodb`) and DynamoDB Streams
(:mod:`local_runtime.moto_streams`). The process prints
``READY <port>`` once it serves, and stops on SIGTERM, SIGINT or when its stdin
closes (its parent is gone).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from local_runtime import idle_gc
from local_runtime.config import HOST, MOTO_READY


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m local_runtime.moto_process")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--lambda-endpoint", required=True, help="the local Lambda Invoke API")
    parser.add_argument("--function", action="append", default=[], help="a physical name")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until told to stop."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    import httpx

    from local_runtime import lambda_seam, moto_dispatch, moto_dynamodb, moto_streams
    from local_runtime.moto_server import KeepAliveMotoServer

    moto_dispatch.apply()
    moto_dynamodb.apply()
    moto_streams.apply(moto_dynamodb.LOCK)  # streams reads see whole transactions
    server = KeepAliveMotoServer(ip_address=HOST, port=args.port)
    server.start()
    port = server.get_host_and_port()[1]
    # moto's Step Functions interpreter calls services at localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    config = {"stepfunctions": {"execute_state_machine": True}}
    httpx.post(f"http://{HOST}:{port}/moto-api/config", json=config, trust_env=False)
    lambda_seam.route(dict.fromkeys(args.function, args.lambda_endpoint))
    idle_gc.acquire()  # full collections while no request waits; a short GIL switch

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def watch_stdin() -> None:
        sys.stdin.read()  # returns when the parent closes the pipe or dies
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    print(f"{MOTO_READY} {port}", flush=True)
    stop.wait()
    idle_gc.release()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
