"""Sortable ids (ULIDs) for every service: accounts, tokens, conversations, messages."""

from __future__ import annotations

import threading


class UlidIds:
    """Strictly increasing ULIDs: within one millisecond the previous id plus one.

    python-ulid is imported on first use, not at cold start (it reads its own
    version from package metadata at import).
    """

    def __init__(self) -> None:
        self._last = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        from ulid import ULID

        with self._lock:
            value = max(int(ULID()), self._last + 1)
            self._last = value
            return str(ULID.from_int(value))


new_id = UlidIds()  # the sandbox's id source
