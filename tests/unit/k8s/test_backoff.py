"""Capped exponential backoff with jitter."""

from __future__ import annotations

from datetime import timedelta

import pytest

from citadel.k8s.backoff import Backoff, BackoffPolicy, backoff_delay

POLICY = BackoffPolicy(base=timedelta(seconds=1), cap=timedelta(seconds=8), jitter=0.25)


@pytest.mark.parametrize(
    ("attempt", "expected_seconds"),
    [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 8.0), (1000, 8.0)],
    ids=["first", "doubles", "doubles-again", "reaches-cap", "stays-capped", "huge-attempt"],
)
def test_delay_grows_exponentially_up_to_the_cap(attempt: int, expected_seconds: float) -> None:
    assert backoff_delay(POLICY, attempt, 0.5) == timedelta(seconds=expected_seconds)


@pytest.mark.parametrize(
    ("unit_random", "expected_seconds"),
    [(0.0, 6.0), (1.0, 10.0)],
    ids=["lowest-jitter", "highest-jitter"],
)
def test_jitter_spreads_the_delay_within_bounds(
    unit_random: float, expected_seconds: float
) -> None:
    assert backoff_delay(POLICY, 10, unit_random) == timedelta(seconds=expected_seconds)


def test_backoff_counts_attempts_and_resets() -> None:
    backoff = Backoff(POLICY, unit_random=lambda: 0.5)
    delays = [backoff.next_delay().total_seconds() for _ in range(5)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    backoff.reset()
    assert backoff.next_delay() == timedelta(seconds=1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"base": timedelta(0)},
        {"base": timedelta(seconds=5), "cap": timedelta(seconds=1)},
        {"factor": 0.5},
        {"jitter": 1.0},
    ],
    ids=["zero-base", "cap-below-base", "shrinking-factor", "full-jitter"],
)
def test_policy_rejects_unusable_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


def test_negative_attempt_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        backoff_delay(POLICY, -1, 0.5)
