"""Two repairs to moto's DynamoDB, applied in moto's own process (moto is pinned).

moto 5.2.5's server answers requests on many threads, but its DynamoDB
backend is not thread-safe, and each ``TransactWriteItems`` begins with a
``copy.deepcopy`` of every table it touches -- every item *and every stream
record the table ever had* -- so that a cancelled transaction can be rolled
back. Under concurrent writers that copy fails ("dictionary changed size
during iteration", a 500 to the client), and its cost grows with the table's
history: a chat table slows down with every message.

* Every DynamoDB request runs under one lock, as if DynamoDB were one
  serializable node (DynamoDB's own guarantees are per item and per
  transaction; serializing is stricter, never weaker).
* Item reads and writes skip moto's shape-driven response serializer, which
  spends about 80 % of a ``BatchGetItem`` of 100 items walking the output
  shape: their results are already DynamoDB JSON, so they are dumped as they
  are (binary values base64-encoded, as the wire format has them). Errors and
  every other operation keep the serializer.
* A transaction backs up only the items it touches and the length of each
  touched table's stream, and restores exactly those when moto cancels it:
  the same all-or-nothing outcome at a cost that grows with the transaction,
  not the table.

The tests in ``tests/unit/local_runtime/test_moto_dynamodb.py`` pin both.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import types
from typing import Any

LOCK = threading.RLock()  # every DynamoDB (and stream) request of moto holds it
_applied = False
# Operations whose results are item data in wire format already (see the module doc).
FAST_ACTIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


def _wire(value: Any) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not DynamoDB JSON")


def dump(result: Any) -> str:
    """A result of :data:`FAST_ACTIONS` as the DynamoDB JSON body."""
    return json.dumps(result, default=_wire, separators=(",", ":"))


def apply() -> None:
    """Patch moto's DynamoDB in this process (idempotent)."""
    global _applied
    if _applied:
        return
    from moto.dynamodb import models
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    original_call = DynamoHandler.call_action
    original_serialized = DynamoHandler.serialized
    original_transact = DynamoDBBackend.transact_write_items

    def serialized(self: Any, action_result: Any) -> Any:
        result = action_result.result
        if isinstance(result, Exception) or self._get_action() not in FAST_ACTIONS:
            return original_serialized(self, action_result)
        headers = {"Content-Type": "application/x-amz-json-1.0", **self.response_headers}
        return 200, headers, dump(result)

    def call_action(self: Any) -> Any:
        with LOCK:
            return original_call(self)

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        with LOCK:
            backup = _Backup(self, transact_items)
            try:
                original_transact(self, transact_items)
            except Exception:
                backup.restore()
                raise

    # The original's whole-table deepcopy becomes the identity for tables (its own
    # "restore" then puts the same table back); other deep copies are unchanged.
    shim = types.SimpleNamespace(
        deepcopy=lambda x, memo=None: x if isinstance(x, Table) else copy.deepcopy(x, memo)
    )
    setattr(models, "copy", shim)  # noqa: B010 (moto's module namespace)
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    DynamoHandler.serialized = serialized  # type: ignore[method-assign]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _applied = True


class _Backup:
    """The items a transaction touches as they were, and the length of each stream."""

    def __init__(self, backend: Any, transact_items: list[dict[str, Any]]) -> None:
        from moto.dynamodb.models.dynamo_type import DynamoType

        self._items: list[tuple[Any, Any, Any, Any]] = []  # table, hash, range, item
        self._streams: dict[str, tuple[Any, int]] = {}
        for entry in transact_items:
            if not isinstance(entry, dict) or len(entry) != 1:
                continue  # moto refuses it before changing anything
            ((_, op),) = entry.items()
            table = backend.tables.get(op.get("TableName")) if isinstance(op, dict) else None
            if table is None:
                continue
            source = op.get("Key") or op.get("Item") or {}
            if table.hash_key_attr not in source:
                continue
            hash_key = DynamoType(source[table.hash_key_attr])
            range_key = None
            if table.range_key_attr is not None:
                if table.range_key_attr not in source:
                    continue
                range_key = DynamoType(source[table.range_key_attr])
            current = table.get_item(hash_key, range_key)
            self._items.append((table, hash_key, range_key, copy.deepcopy(current)))
            shard = getattr(table, "stream_shard", None)
            if shard is not None and table.name not in self._streams:
                self._streams[table.name] = (shard, len(shard.items))

    def restore(self) -> None:
        for table, hash_key, range_key, item in reversed(self._items):
            if table.range_key_attr is not None:
                if item is None:
                    table.items[hash_key].pop(range_key, None)
                    if not table.items[hash_key]:
                        table.items.pop(hash_key, None)
                else:
                    table.items[hash_key][range_key] = item
            elif item is None:
                table.items.pop(hash_key, None)
            else:
                table.items[hash_key] = item
        for shard, length in self._streams.values():
            del shard.items[length:]
