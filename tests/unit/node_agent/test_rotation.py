from __future__ import annotations

from datetime import timedelta

import pytest

from node_agent.rotation import BackoffPolicy, RotationPolicy, backoff_delay, retry_at, rotate_at
from tests.conftest import FIXED_NOW

START = FIXED_NOW
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    ("ratio", "u", "expected"),
    [
        (0.5, 0.0, START + timedelta(hours=12)),
        (0.25, 0.0, START + timedelta(hours=18)),
        (0.5, 1.0, START + timedelta(hours=12) + DAY * 0.01),
        (0.5, -1.0, START + timedelta(hours=12) - DAY * 0.01),
    ],
    ids=["half-life", "quarter-before-expiry", "max-positive-jitter", "max-negative-jitter"],
)
def test_rotate_at_is_ratio_of_lifetime_before_expiry_plus_jitter(
    ratio: float, u: float, expected: object
) -> None:
    assert rotate_at(START, START + DAY, ratio, 0.01, u) == expected


def test_rotate_at_counts_the_backdated_lifetime_from_the_issued_certificate() -> None:
    # A 30 s certificate backdated 2 minutes lives 150 s: ratio 0.1 renews 15 s before expiry.
    not_before = START - timedelta(minutes=2)
    not_after = START + timedelta(seconds=30)
    assert rotate_at(not_before, not_after, 0.1, 0.0, 0.0) == START + timedelta(seconds=15)


def test_rotate_at_stays_inside_the_validity_window() -> None:
    assert rotate_at(START, START + DAY, 0.01, 0.49, 1.0) == START + DAY
    assert rotate_at(START, START + DAY, 0.99, 0.49, -1.0) == START


def test_rotate_at_renews_a_certificate_without_lifetime_at_once() -> None:
    assert rotate_at(START, START, 0.5, 0.01, 0.3) == START


@pytest.mark.parametrize("u", [1.5, -1.01], ids=["above-one", "below-minus-one"])
def test_rotate_at_rejects_a_draw_outside_minus_one_one(u: float) -> None:
    with pytest.raises(ValueError, match="random draw"):
        rotate_at(START, START + DAY, 0.5, 0.01, u)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1], ids=["zero", "one", "negative"])
def test_rotation_policy_rejects_a_ratio_outside_zero_one(ratio: float) -> None:
    with pytest.raises(ValueError, match="ratio"):
        RotationPolicy(ratio=ratio)


def test_backoff_doubles_per_attempt_until_the_cap() -> None:
    policy = BackoffPolicy(initial=timedelta(seconds=1), maximum=timedelta(seconds=10))
    delays = [backoff_delay(n, policy, 0.0).total_seconds() for n in range(6)]
    assert delays == [1, 2, 4, 8, 10, 10]


def test_backoff_jitter_moves_the_delay_but_never_past_the_cap() -> None:
    policy = BackoffPolicy(
        initial=timedelta(seconds=1), maximum=timedelta(seconds=10), jitter_fraction=0.2
    )
    assert backoff_delay(1, policy, 1.0) == timedelta(seconds=2.4)
    assert backoff_delay(1, policy, -1.0) == timedelta(seconds=1.6)
    assert backoff_delay(30, policy, 1.0) == timedelta(seconds=10)


def test_backoff_survives_a_huge_attempt_count() -> None:
    policy = BackoffPolicy()
    assert backoff_delay(10_000, policy, 0.0) == policy.maximum


def test_retry_at_never_waits_past_the_cached_certificate_expiry() -> None:
    expiry = START + timedelta(seconds=5)
    assert retry_at(START, timedelta(seconds=30), expiry) == expiry
    assert retry_at(START, timedelta(seconds=3), expiry) == START + timedelta(seconds=3)
    assert retry_at(START, timedelta(seconds=3), None) == START + timedelta(seconds=3)
    # Already expired: plain backoff.
    assert retry_at(START, timedelta(seconds=3), START - timedelta(seconds=1)) == START + timedelta(
        seconds=3
    )
