"""Suite-wide fixtures and plugins.

``tests.unit.hygiene.plugin`` scans every log record and every harness log file of the
session for private keys, JWTs and join tokens, and fails the session if it finds one.
``pytester`` lets the hygiene tests prove that scan can fail.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citadel.identity.clock import ManualClock

pytest_plugins = ["tests.peers.postgres", "tests.unit.hygiene.plugin", "pytester"]

# A fixed validation time keeps certificate tests independent of the wall clock.
FIXED_NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(FIXED_NOW)
