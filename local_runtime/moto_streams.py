"""Three repairs to moto's DynamoDB Streams, applied in moto's own process (moto is pinned).

The local stream poller (:mod:`local_runtime.streams`) calls ``GetRecords``
about twenty times a second per declared stream. In moto 5.2.5:

* every ``GetShardIterator`` and ``GetRecords`` stores a new shard iterator
  that is never dropped (AWS expires them after 15 minutes): at that rate the
  AWS endpoint would grow by some 200 MB an hour. Iterators beyond the newest
  :data:`KEEP_ITERATORS` are dropped (a client holding an older one gets an
  error and asks for a new iterator, as after an expiry in AWS);
* DynamoDB Streams requests do not take the lock that
  :mod:`local_runtime.moto_dynamodb` puts around DynamoDB requests, so a read
  could see the stream records of a transaction that moto then cancels (and
  whose sequence numbers it hands out again). Streams requests take the same
  lock, so a reader sees a transaction's records all or none, and only once it
  committed;
* ``GetRecords`` answers skip moto's shape-driven serializer, which cost more
  CPU than everything else moto did for a chat fan-out (each poll re-walks
  whole item images through the output shape): the records are wire-format
  already, so they are dumped as they are (times as epoch seconds, binary as
  base64), like ``moto_dynamodb`` does for item data.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from datetime import UTC, datetime
from typing import Any, Final

KEEP_ITERATORS: Final = 10_000  # minutes of polling; each iterator is used once, at once
PRUNE_INTERVAL_S: Final = 10.0
_applied = False


def apply(lock: Any) -> None:
    """Patch moto's DynamoDB Streams in this process (idempotent).

    Args:
        lock: the lock every DynamoDB request holds (``moto_dynamodb``'s).
    """
    global _applied
    if _applied:
        return
    from moto.dynamodbstreams.responses import DynamoDBStreamsHandler

    original_call = DynamoDBStreamsHandler.call_action
    original_serialized = DynamoDBStreamsHandler.serialized

    def call_action(self: Any) -> Any:
        with lock:
            return original_call(self)

    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if isinstance(result, Exception) or self._get_action() != "GetRecords":
            return original_serialized(self, action_result)
        headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
        return 200, headers, dump_records(result)

    DynamoDBStreamsHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoDBStreamsHandler.serialized = serialized  # type: ignore[method-assign]
    threading.Thread(
        target=_prune_forever, args=(lock,), name="stream-iterators", daemon=True
    ).start()
    _applied = True


def _wire(value: Any) -> Any:
    if isinstance(value, datetime):
        when = value if value.tzinfo else value.replace(tzinfo=UTC)
        return math.floor(when.timestamp() * 1000) / 1000  # milliseconds, as moto's serializer
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not DynamoDB Streams JSON")


def dump_records(result: Any) -> str:
    """A ``GetRecords`` result as its JSON body."""
    return json.dumps(result, default=_wire, separators=(",", ":"))


def prune(iterators: dict[str, Any], keep: int = KEEP_ITERATORS) -> int:
    """Drop the oldest shard iterators beyond ``keep`` (dicts keep insertion order)."""
    dropped = 0
    while len(iterators) > keep:
        try:
            del iterators[next(iter(iterators))]
        except (KeyError, RuntimeError, StopIteration):  # another thread changed it
            continue
        dropped += 1
    return dropped


def _prune_forever(lock: Any) -> None:
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    stop = threading.Event()  # never set: the thread ends with the process
    while not stop.wait(PRUNE_INTERVAL_S):
        with lock:
            for account in list(dynamodbstreams_backends.values()):
                for backend in list(account.values()):
                    prune(backend.shard_iterators)
