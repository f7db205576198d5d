"""Fixed-window rate limits kept in DynamoDB (one atomic counter per key and window).

The PynamoDB model lives in ``ratelimit_store`` and is imported on first use, so
declaring a :class:`Limit` costs nothing at cold start.

API Gateway throttles the whole API; these limits are per user, per client and
per route, and they back the login brute-force protection. Counters expire by
TTL shortly after their window ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lwm_core.errors import RateLimitedError


@dataclass(frozen=True)
class Limit:
    """At most ``max_hits`` per ``window_s`` seconds for one key."""

    name: str
    max_hits: int
    window_s: int


def with_overrides(limit: Limit, overrides: Mapping[str, tuple[int, int]]) -> Limit:
    """``limit`` with the max hits and window an operator configured for its name, if any."""
    override = overrides.get(limit.name)
    if override is None:
        return limit
    max_hits, window_s = override
    return Limit(limit.name, int(max_hits), int(window_s))


class RateLimiter:
    """Counts hits per (limit, key) and refuses those over the limit.

    Args:
        clock: seconds since the epoch (tests pass their own).
        overrides: configured ``{name: (max_hits, window_s)}`` replacing a limit's defaults.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        overrides: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        self._clock = clock
        self._overrides = dict(overrides or {})

    def _window(self, limit: Limit) -> tuple[int, int]:
        now = self._clock()
        start = int(now // limit.window_s * limit.window_s)
        return start, max(1, int(start + limit.window_s - now + 0.999))

    def _pk(self, limit: Limit, key: str, start: int) -> str:
        return f"{limit.name}#{key}#{start}"

    def hit(self, limit: Limit, key: str) -> int:
        """Count one hit; raise RateLimitedError (with Retry-After) when over the limit."""
        from lwm_core.ratelimit_store import RateCounter

        limit = with_overrides(limit, self._overrides)
        start, retry_after = self._window(limit)
        counter = RateCounter(self._pk(limit, key, start))
        counter.update(
            actions=[
                RateCounter.hits.add(1),
                RateCounter.expires_at.set(start + limit.window_s + 60),
            ]
        )
        if counter.hits > limit.max_hits:
            raise RateLimitedError(retry_after, f"too many requests; retry in {retry_after}s")
        return int(counter.hits)

    def check(self, limit: Limit, key: str) -> None:
        """Raise RateLimitedError if ``key`` is already at the limit, without counting."""
        from lwm_core.ratelimit_store import RateCounter

        limit = with_overrides(limit, self._overrides)
        start, retry_after = self._window(limit)
        try:
            counter = RateCounter.get(self._pk(limit, key, start), consistent_read=True)
        except RateCounter.DoesNotExist:
            return
        if counter.hits >= limit.max_hits:
            raise RateLimitedError(retry_after, f"too many attempts; retry in {retry_after}s")

    def reset(self, limit: Limit, key: str) -> None:
        """Forget the current window's hits of ``key`` (e.g. after a successful login)."""
        from lwm_core.ratelimit_store import RateCounter

        start, _ = self._window(with_overrides(limit, self._overrides))
        RateCounter(self._pk(limit, key, start)).delete()
