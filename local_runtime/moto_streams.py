"""Two repairs to moto's DynamoDB Streams, applied in moto's own process (moto is pinned).

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
  committed.
"""

from __future__ import annotations

import threading
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

    def call_action(self: Any) -> Any:
        with lock:
            return original_call(self)

    DynamoDBStreamsHandler.call_action = call_action  # type: ignore[method-assign]
    threading.Thread(
        target=_prune_forever, args=(lock,), name="stream-iterators", daemon=True
    ).start()
    _applied = True


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
