"""The injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from citadel.identity.clock import ManualClock, SystemClock, utc
from tests.conftest import FIXED_NOW


def test_manual_clock_stays_put_until_advanced(clock: ManualClock) -> None:
    assert clock.now() == FIXED_NOW
    assert clock.now() == FIXED_NOW
    assert clock.advance(timedelta(minutes=5)) == FIXED_NOW + timedelta(minutes=5)
    assert clock.now() == FIXED_NOW + timedelta(minutes=5)


def test_manual_clock_set_converts_to_utc(clock: ManualClock) -> None:
    plus_two = timezone(timedelta(hours=2))
    clock.set(datetime(2030, 1, 1, 14, 0, tzinfo=plus_two))
    assert clock.now() == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert clock.now().tzinfo is UTC


def test_utc_takes_naive_values_as_utc_and_converts_aware_ones() -> None:
    assert utc(datetime(2026, 1, 1, 12)) == datetime(2026, 1, 1, 12, tzinfo=UTC)
    aware = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=-5)))
    assert utc(aware) == datetime(2026, 1, 1, 17, tzinfo=UTC)
    assert utc(aware).tzinfo is UTC


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC
