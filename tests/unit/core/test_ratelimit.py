"""Fixed-window rate limits over DynamoDB (``lwm_core.ratelimit``), with moto in process.

The table is created from the declaration (``blueprint.platform.RATE_LIMIT_TABLE``)
so the counter model is tested against the keys and TTL the stacks deploy.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from blueprint.model import Table
from blueprint.platform import RATE_LIMIT_TABLE
from lwm_core.dynamo import bind
from lwm_core.errors import RateLimitedError
from lwm_core.ratelimit import Limit, RateLimiter, with_overrides
from lwm_core.ratelimit_store import RateCounter

REGION = "us-east-1"
WINDOW_START = 1_800_000_000  # a multiple of 60, 900 and 3600
LOGIN = Limit("login-fail-account", 3, 60)


class ManualClock:
    """Seconds since the epoch that move only when told to."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def create_table(dynamodb: Any, table: Table, physical_name: str) -> None:
    """Create ``table`` as its declaration says: keys, on-demand billing, TTL."""
    keys = [(table.partition_key, "HASH"), (table.sort_key, "RANGE")]
    dynamodb.create_table(
        TableName=physical_name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": kind}
            for name, kind in table.attributes().items()
        ],
        KeySchema=[{"AttributeName": k.name, "KeyType": role} for k, role in keys if k],
    )
    if table.ttl_attribute:
        dynamodb.update_time_to_live(
            TableName=physical_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
        )


@pytest.fixture(scope="module")
def dynamodb() -> Iterator[Any]:
    """moto DynamoDB in process, with the rate-limits table bound to ``RateCounter``."""
    with pytest.MonkeyPatch.context() as mp, mock_aws():
        for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB"):
            mp.delenv(name, raising=False)
        client = boto3.client("dynamodb", region_name=REGION)
        # A fresh physical name per module: bind() then drops any cached connection.
        physical = f"lwm-unit-{RATE_LIMIT_TABLE.name}-{uuid.uuid4().hex[:8]}"
        create_table(client, RATE_LIMIT_TABLE, physical)
        bind(RateCounter, physical, REGION)
        try:
            yield client
        finally:
            bind(RateCounter, "", REGION)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(WINDOW_START + 10.0)


@pytest.fixture
def key() -> str:
    """A key no other test counts against (the table lives for the module)."""
    return f"client-{uuid.uuid4().hex}"


@pytest.fixture
def limiter(dynamodb: Any, clock: ManualClock) -> RateLimiter:
    return RateLimiter(clock=clock)


def _stored_hits(limit: Limit, key: str, start: int) -> int | None:
    try:
        return int(RateCounter.get(f"{limit.name}#{key}#{start}", consistent_read=True).hits)
    except RateCounter.DoesNotExist:
        return None


def test_the_table_matches_the_declaration(dynamodb: Any) -> None:
    # Given the table created from the declaration
    name = RateCounter.Meta.table_name
    # When it is described
    table = dynamodb.describe_table(TableName=name)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    # Then its only key is the counter's hash key and the TTL is the counter's expiry
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert RateCounter.pk.attr_name == RATE_LIMIT_TABLE.partition_key.name
    assert ttl["AttributeName"] == RateCounter.expires_at.attr_name == "expires_at"


class TestHit:
    def test_hits_up_to_the_limit_pass_and_the_next_is_refused(
        self, limiter: RateLimiter, key: str
    ) -> None:
        # Given a limit of 3 per minute, 10 s into a window
        # When a key hits it three times
        # Then each hit passes and returns its count
        assert [limiter.hit(LOGIN, key) for _ in range(3)] == [1, 2, 3]
        # When it hits a fourth time
        # Then RateLimitedError, retrying when the window ends (50 s from now)
        with pytest.raises(RateLimitedError) as caught:
            limiter.hit(LOGIN, key)
        assert caught.value.retry_after == 50
        assert caught.value.headers == {"Retry-After": "50"}
        assert caught.value.status == 429

    def test_keys_and_limits_are_counted_apart(self, limiter: RateLimiter, key: str) -> None:
        # Given one key at its limit
        for _ in range(3):
            limiter.hit(LOGIN, key)
        # When another key, or the same key under another limit, hits
        # Then they start from one
        assert limiter.hit(LOGIN, key + "-other") == 1
        assert limiter.hit(Limit("ip-route", 3, 60), key) == 1

    def test_the_window_rolls_over(
        self, limiter: RateLimiter, clock: ManualClock, key: str
    ) -> None:
        # Given a key refused at the end of a window
        for _ in range(3):
            limiter.hit(LOGIN, key)
        clock.advance(49.5)  # 59.5 s into the window
        with pytest.raises(RateLimitedError) as caught:
            limiter.hit(LOGIN, key)
        assert caught.value.retry_after == 1
        # When the next window starts
        clock.advance(0.5)
        # Then the key is counted afresh
        assert limiter.hit(LOGIN, key) == 1

    def test_the_counter_expires_a_minute_after_its_window(
        self, limiter: RateLimiter, key: str
    ) -> None:
        # Given a hit in the window starting at WINDOW_START
        limiter.hit(LOGIN, key)
        # When its counter is read
        counter = RateCounter.get(f"{LOGIN.name}#{key}#{WINDOW_START}", consistent_read=True)
        # Then it expires by TTL a minute after the window ends
        assert counter.expires_at == WINDOW_START + 60 + 60

    def test_overrides_replace_max_hits_and_window(
        self, dynamodb: Any, clock: ManualClock, key: str
    ) -> None:
        # Given an operator override of the login limit to 1 per 10 minutes
        limiter = RateLimiter(clock=clock, overrides={LOGIN.name: (1, 600)})
        # When a key hits twice
        limiter.hit(LOGIN, key)
        # Then the second is refused until the 10-minute window ends
        with pytest.raises(RateLimitedError) as caught:
            limiter.hit(LOGIN, key)
        assert caught.value.retry_after == 600 - 10
        # And a limit without an override keeps its defaults
        other = Limit("ip-route", 2, 60)
        assert [limiter.hit(other, key) for _ in range(2)] == [1, 2]

    def test_with_overrides(self) -> None:
        # Given overrides for one limit name
        overrides = {"login-fail-account": (10, 300)}
        # When limits are resolved
        # Then only the named one changes
        assert with_overrides(LOGIN, overrides) == Limit("login-fail-account", 10, 300)
        assert with_overrides(Limit("x", 1, 1), overrides) == Limit("x", 1, 1)

    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        offset=st.floats(min_value=0, max_value=10_000, allow_nan=False),
        window=st.sampled_from([1, 7, 60, 900, 3600]),
        max_hits=st.integers(1, 3),
    )
    def test_retry_after_points_at_the_end_of_the_window(
        self, dynamodb: Any, offset: float, window: int, max_hits: int
    ) -> None:
        # Given any moment and any window
        now = WINDOW_START + offset
        limiter = RateLimiter(clock=lambda: now)
        limit = Limit("prop", max_hits, window)
        key = uuid.uuid4().hex
        for _ in range(max_hits):
            limiter.hit(limit, key)
        # When the key goes over the limit
        with pytest.raises(RateLimitedError) as caught:
            limiter.hit(limit, key)
        # Then Retry-After is the whole seconds until the window ends (at least 1, at most
        # the window)
        remaining = (now // window + 1) * window - now
        assert 1 <= caught.value.retry_after <= window
        assert abs(caught.value.retry_after - remaining) < 1


class TestCheckAndReset:
    def test_check_refuses_at_the_limit_without_counting(
        self, limiter: RateLimiter, key: str
    ) -> None:
        # Given a key never seen
        # When it is checked
        # Then it passes and nothing is stored
        limiter.check(LOGIN, key)
        assert _stored_hits(LOGIN, key, WINDOW_START) is None
        # Given two failures: still under the limit of 3
        limiter.hit(LOGIN, key)
        limiter.hit(LOGIN, key)
        limiter.check(LOGIN, key)
        # When the third failure brings it to the limit
        limiter.hit(LOGIN, key)
        # Then check refuses, and checking did not count
        for _ in range(2):
            with pytest.raises(RateLimitedError) as caught:
                limiter.check(LOGIN, key)
        assert caught.value.retry_after == 50
        assert _stored_hits(LOGIN, key, WINDOW_START) == 3

    def test_check_uses_overrides(self, dynamodb: Any, clock: ManualClock, key: str) -> None:
        # Given a limit overridden down to one hit
        limiter = RateLimiter(clock=clock, overrides={LOGIN.name: (1, 60)})
        limiter.hit(LOGIN, key)
        # When the key is checked
        # Then it is at the limit
        with pytest.raises(RateLimitedError):
            limiter.check(LOGIN, key)

    def test_reset_forgets_the_current_window(self, limiter: RateLimiter, key: str) -> None:
        # Given a key at its limit (e.g. failed logins)
        for _ in range(3):
            limiter.hit(LOGIN, key)
        # When it is reset (a successful login)
        limiter.reset(LOGIN, key)
        # Then it passes check and counts from one again
        limiter.check(LOGIN, key)
        assert limiter.hit(LOGIN, key) == 1

    def test_reset_of_an_unknown_key_is_harmless(self, limiter: RateLimiter, key: str) -> None:
        # Given a key never seen
        # When it is reset
        # Then nothing is raised
        limiter.reset(LOGIN, key)

    def test_reset_with_an_override_clears_the_overridden_window(
        self, dynamodb: Any, clock: ManualClock, key: str
    ) -> None:
        # Given a 10-minute override and a key at its limit, 5 minutes in
        clock.advance(300)
        limiter = RateLimiter(clock=clock, overrides={LOGIN.name: (1, 600)})
        limiter.hit(LOGIN, key)
        # When it is reset
        limiter.reset(LOGIN, key)
        # Then it may hit again
        assert limiter.hit(LOGIN, key) == 1
