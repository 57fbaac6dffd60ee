from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citadel.ca.rotation_schedule import (
    activation_threshold,
    preparation_threshold,
    rotation_due,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("lifetime", "prepare_after", "activate_after"),
    [
        (timedelta(hours=24), timedelta(hours=12), timedelta(hours=20)),
        (timedelta(days=30), timedelta(days=15), timedelta(days=25)),
        (timedelta(days=365), timedelta(days=335), timedelta(days=358)),
        (timedelta(days=3650), timedelta(days=3620), timedelta(days=3643)),
    ],
    ids=["1-day-half-and-sixth", "30-days-half-and-sixth", "1-year-capped", "10-years-capped"],
)
def test_thresholds_follow_half_and_sixth_of_life_with_caps(
    lifetime: timedelta, prepare_after: timedelta, activate_after: timedelta
) -> None:
    not_after = T0 + lifetime
    assert preparation_threshold(T0, not_after) == T0 + prepare_after
    assert activation_threshold(T0, not_after) == T0 + activate_after


def test_nothing_is_due_before_half_life() -> None:
    due = rotation_due(T0, T0 + timedelta(days=10), T0 + timedelta(days=4))
    assert (due.prepare, due.activate) == (False, False)


def test_prepare_is_due_at_half_life_and_activate_later() -> None:
    not_after = T0 + timedelta(days=12)
    assert rotation_due(T0, not_after, T0 + timedelta(days=6)).prepare
    assert not rotation_due(T0, not_after, T0 + timedelta(days=6)).activate
    assert rotation_due(T0, not_after, T0 + timedelta(days=10)).activate


def test_an_authority_that_expires_before_it_was_issued_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="not_after must be later"):
        preparation_threshold(T0, T0)
