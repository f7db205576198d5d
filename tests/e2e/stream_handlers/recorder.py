"""Records every batch it gets, then fails as the records ask (their ``behaviour`` attribute).

``poison``: the invocation raises (a function error); ``partial-once``: the record is
reported in ``batchItemFailures`` the first time it is seen. Each invocation appends one
JSON line (its start time, the event, whether it raised) to ``$STREAM_TEST_OUT/<function>.jsonl``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

OUT = Path(os.environ["STREAM_TEST_OUT"])


def _behaviour(record: dict[str, Any]) -> str:
    image = record["dynamodb"].get("NewImage") or {}
    return str(image.get("behaviour", {}).get("S", "ok"))


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.time()
    records = event["Records"]
    poisoned = any(_behaviour(r) == "poison" for r in records)
    failures = []
    if not poisoned:
        for record in records:
            if _behaviour(record) == "partial-once":
                marker = OUT / f"seen-{record['dynamodb']['SequenceNumber']}"
                if not marker.exists():
                    marker.touch()
                    failures.append({"itemIdentifier": record["dynamodb"]["SequenceNumber"]})
    line = {"started": started, "event": event, "raised": poisoned, "failures": failures}
    name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
    with (OUT / f"{name}.jsonl").open("a", encoding="utf-8") as out:
        out.write(json.dumps(line) + "\n")
    if poisoned:
        raise RuntimeError("a poison record")
    return {"batchItemFailures": failures}
