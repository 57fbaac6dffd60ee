"""Suite-wide fixtures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citadel.identity.clock import ManualClock

pytest_plugins = ["tests.peers.postgres"]

# A fixed validation time keeps certificate tests independent of the wall clock.
FIXED_NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FIXED_NOW)
