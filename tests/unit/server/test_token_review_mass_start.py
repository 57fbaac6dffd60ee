"""The client-side TokenReview limit with its defaults: a mass start is not throttled here."""

from __future__ import annotations

from datetime import timedelta

from citadel.k8s.client import KubeClientSettings
from citadel.server.config import KubernetesAuthConfig
from citadel.server.metrics import ServerMetrics
from citadel.server.rate_limit import BlockingThrottle

DEFAULTS = KubernetesAuthConfig(api=KubeClientSettings(host="https://10.0.0.1"))
THROTTLED = "citadel_server_token_review_throttled_count_total"


class FakeMonotonic:
    """A monotonic clock moved by hand and by ``sleep``, which (like a real sleep) never
    wakes early: it oversleeps by a microsecond."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds + 1e-6


def _throttle(clock: FakeMonotonic, metrics: ServerMetrics) -> BlockingThrottle:
    return BlockingThrottle(
        DEFAULTS.throttle_limit,
        max_wait=DEFAULTS.max_wait,
        on_throttled=metrics.record_token_review_throttled,
        monotonic=clock,
        sleep=clock.sleep,
    )


def _throttled(metrics: ServerMetrics, outcome: str) -> float:
    return metrics.registry.get_sample_value(THROTTLED, {"outcome": outcome}) or 0.0


def test_a_replicas_share_of_ten_thousand_new_pods_in_ten_seconds_is_never_delayed() -> None:
    """10,000 pods on two replicas: 5,000 distinct tokens each, arriving evenly in 10 s."""
    clock, metrics = FakeMonotonic(), ServerMetrics()
    throttle = _throttle(clock, metrics)
    for _ in range(5_000):
        assert throttle.acquire()
        clock.now += 10.0 / 5_000
    assert clock.slept == []
    assert _throttled(metrics, "delayed") == _throttled(metrics, "refused") == 0.0


def test_a_burst_of_the_default_size_at_one_instant_goes_straight_through() -> None:
    clock, metrics = FakeMonotonic(), ServerMetrics()
    throttle = _throttle(clock, metrics)
    assert all(throttle.acquire() for _ in range(DEFAULTS.burst))
    assert clock.slept == []
    # Beyond the burst the next review waits for the refill and the wait is counted.
    assert throttle.acquire()
    assert _throttled(metrics, "delayed") == 1.0


def test_beyond_the_default_rate_reviews_are_delayed_then_refused_and_counted() -> None:
    clock, metrics = FakeMonotonic(), ServerMetrics()
    throttle = _throttle(clock, metrics)
    admitted = sum(throttle.acquire() for _ in range(DEFAULTS.burst))
    # Simultaneous callers (no time passes between them except the throttle's own sleeps):
    # each admitted one waited 1/qps; none waits longer than max_wait.
    waited = [throttle.acquire() for _ in range(10)]
    assert admitted == DEFAULTS.burst and all(waited)
    assert max(clock.slept) <= DEFAULTS.max_wait.total_seconds()
    assert _throttled(metrics, "delayed") == 10.0
    slow = BlockingThrottle(
        DEFAULTS.throttle_limit,
        max_wait=timedelta(0),
        on_throttled=metrics.record_token_review_throttled,
        monotonic=clock,
        sleep=clock.sleep,
    )
    assert sum(slow.acquire() for _ in range(DEFAULTS.burst + 1)) == DEFAULTS.burst
    assert _throttled(metrics, "refused") == 1.0
