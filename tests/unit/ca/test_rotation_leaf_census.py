"""Counting the valid leaves that hold an authority in place: the exact listing and, when
the store holds more certificates than one listing returns, the audit-log scan."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.rotation.leaf_census import LeafCensus
from citadel.ca.rotation.slots import Slot
from citadel.identity.clock import ManualClock
from tests.unit.ca.lifecycle_kit import LifecycleCa, lifecycle_ca


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


def _count(ca: LifecycleCa, census: LeafCensus, fingerprint: str) -> tuple[int, tuple[str, ...]]:
    now = ca.clock.now()
    found = census.unexpired(
        [fingerprint],
        now=now,
        not_after_bound=now + timedelta(days=400),
        issued_since=now - timedelta(days=3),
    )
    return found.count, found.sample_serials


@pytest.mark.parametrize("page_limit", [10_000, 3], ids=["listing", "audit scan"])
def test_only_unexpired_unrevoked_leaves_of_the_issuer_count(
    ca: LifecycleCa, page_limit: int
) -> None:
    old = ca.rotation.slots().signer
    ca.issue("expiring", ttl=timedelta(hours=1))
    ca.clock.advance(timedelta(hours=2))
    valid = [ca.issue(f"w{i}") for i in range(4)]
    ca.revoker().revoke_serial(valid[0].serial_hex, "superseded")
    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.rotation.activate(Slot.INTERMEDIATE)
    ca.watcher.poll()
    for i in range(4):
        ca.issue(f"new{i}")  # the other issuer's leaves never count
    count, samples = _count(
        ca, LeafCensus(ca.repository, page_limit=page_limit), old.fingerprint_sha256
    )
    assert count == 3
    assert set(samples) <= {c.serial_hex for c in valid[1:]}


def test_the_audit_scan_finds_its_start_by_time(ca: LifecycleCa) -> None:
    old = ca.rotation.slots().signer
    for i in range(6):
        ca.issue(f"old{i}", ttl=timedelta(hours=1))
    ca.clock.advance(timedelta(days=5))
    keep = ca.issue("keep")
    census = LeafCensus(ca.repository, page_limit=2)
    count, samples = _count(ca, census, old.fingerprint_sha256)
    assert (count, samples) == (1, (keep.serial_hex,))


def test_an_unknown_issuer_has_no_leaves(ca: LifecycleCa) -> None:
    ca.issue()
    assert _count(ca, LeafCensus(ca.repository), "0" * 64) == (0, ())
