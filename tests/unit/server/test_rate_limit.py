from __future__ import annotations

from datetime import timedelta

import pytest

from citadel.server.errors import RateLimitedError
from citadel.server.rate_limit import (
    BlockingThrottle,
    CsrRateLimiter,
    KeyedTokenBuckets,
    RateLimit,
    TokenBucket,
)


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_bucket_allows_the_burst_then_reports_the_wait() -> None:
    clock = FakeMonotonic()
    bucket = TokenBucket(RateLimit(rate=2.0, burst=3), monotonic=clock)
    assert [bucket.try_take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.try_take() == pytest.approx(0.5)


def test_bucket_refills_at_the_rate_and_never_beyond_the_burst() -> None:
    clock = FakeMonotonic()
    bucket = TokenBucket(RateLimit(rate=2.0, burst=3), monotonic=clock)
    for _ in range(3):
        bucket.try_take()
    clock.now += 0.5
    assert bucket.try_take() == 0.0
    assert bucket.try_take() > 0
    clock.now += 3600
    assert [bucket.try_take() for _ in range(4)][:3] == [0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("rate", "burst"),
    [(0.0, 1), (-1.0, 1), (float("inf"), 1), (1.0, 0)],
    ids=["zero-rate", "negative-rate", "infinite-rate", "zero-burst"],
)
def test_rate_limit_rejects_unusable_values(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        RateLimit(rate=rate, burst=burst)


def test_divided_limit_shares_rate_and_burst_between_workers() -> None:
    assert RateLimit(rate=100.0, burst=10).divided(4) == RateLimit(rate=25.0, burst=2)
    assert RateLimit(rate=1.0, burst=1).divided(8).burst == 1


def test_keyed_buckets_are_independent_and_forget_the_least_recent() -> None:
    clock = FakeMonotonic()
    buckets = KeyedTokenBuckets(RateLimit(rate=1.0, burst=1), max_keys=2, monotonic=clock)
    assert buckets.try_take("a") == 0.0
    assert buckets.try_take("b") == 0.0
    assert buckets.try_take("a") > 0
    assert buckets.try_take("c") == 0.0  # evicts "b"
    assert len(buckets) == 2
    assert buckets.try_take("b") == 0.0  # forgotten, so a full bucket again


def test_csr_limiter_raises_with_a_whole_second_retry_hint() -> None:
    clock = FakeMonotonic()
    limiter = CsrRateLimiter(
        global_limit=None, identity_limit=RateLimit(rate=0.25, burst=1), monotonic=clock
    )
    limiter.check_identity("spiffe://td/a")
    with pytest.raises(RateLimitedError) as caught:
        limiter.check_identity("spiffe://td/a")
    assert caught.value.retry_after == timedelta(seconds=4)
    assert caught.value.scope == "identity"
    limiter.check_identity("spiffe://td/b")


def test_csr_limiter_global_limit_and_disabled_limits() -> None:
    clock = FakeMonotonic()
    limiter = CsrRateLimiter(
        global_limit=RateLimit(rate=10.0, burst=1), identity_limit=None, monotonic=clock
    )
    limiter.check_global()
    with pytest.raises(RateLimitedError) as caught:
        limiter.check_global()
    assert caught.value.retry_after == timedelta(seconds=1)
    for _ in range(100):
        limiter.check_identity("spiffe://td/a")


def test_throttle_waits_for_a_token_and_reports_the_delay() -> None:
    clock = FakeMonotonic()
    seen: list[bool] = []
    throttle = BlockingThrottle(
        RateLimit(rate=10.0, burst=1), max_wait=timedelta(seconds=1),
        on_throttled=seen.append, monotonic=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert throttle.acquire()
    assert seen == []
    assert throttle.acquire()
    assert clock.slept == [pytest.approx(0.1)]
    assert seen == [True]


def test_throttle_refuses_when_the_wait_would_be_too_long() -> None:
    clock = FakeMonotonic()
    seen: list[bool] = []
    throttle = BlockingThrottle(
        RateLimit(rate=0.1, burst=1), max_wait=timedelta(seconds=1),
        on_throttled=seen.append, monotonic=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert throttle.acquire()
    assert not throttle.acquire()
    assert clock.slept == []
    assert seen == [False]
