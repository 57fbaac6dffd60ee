"""Counting the valid leaves that hold an authority in place, with the indexed store query."""

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


def _count(ca: LifecycleCa, *fingerprints: str) -> tuple[int, tuple[str, ...]]:
    found = LeafCensus(ca.repository).unexpired(fingerprints, now=ca.clock.now())
    return found.count, found.sample_serials


def test_only_unexpired_unrevoked_leaves_of_the_issuer_count(ca: LifecycleCa) -> None:
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
    count, samples = _count(ca, old.fingerprint_sha256)
    assert count == 3
    assert set(samples) == {c.serial_hex for c in valid[1:]}


def test_the_sample_ends_with_the_leaf_that_expires_last(ca: LifecycleCa) -> None:
    signer = ca.rotation.slots().signer
    short = [ca.issue(f"short{i}", ttl=timedelta(hours=1)) for i in range(3)]
    last = ca.issue("long", ttl=timedelta(hours=5))
    count, samples = _count(ca, signer.fingerprint_sha256)
    assert count == 4
    assert samples[-1] == last.serial_hex
    assert len(samples) == 3 and set(samples[:-1]) <= {c.serial_hex for c in short}
    found = LeafCensus(ca.repository).unexpired([signer.fingerprint_sha256], now=ca.clock.now())
    assert found.last_not_after == last.leaf.not_valid_after_utc


def test_leaves_expired_long_ago_do_not_count(ca: LifecycleCa) -> None:
    old = ca.rotation.slots().signer
    for i in range(6):
        ca.issue(f"old{i}", ttl=timedelta(hours=1))
    ca.clock.advance(timedelta(days=5))
    keep = ca.issue("keep")
    assert _count(ca, old.fingerprint_sha256) == (1, (keep.serial_hex,))


def test_several_issuers_are_counted_together(ca: LifecycleCa) -> None:
    old = ca.rotation.slots().signer
    ca.issue("a")
    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.rotation.activate(Slot.INTERMEDIATE)
    ca.watcher.poll()
    new = ca.rotation.slots().signer
    ca.issue("b")
    assert _count(ca, old.fingerprint_sha256)[0] == 1
    assert _count(ca, old.fingerprint_sha256, new.fingerprint_sha256)[0] == 2


@pytest.mark.parametrize(
    "issuers", [(), ("0" * 64,), ("x" * 5000,)], ids=["none", "unknown", "oversized"]
)
def test_no_or_unknown_issuers_have_no_leaves(ca: LifecycleCa, issuers: tuple[str, ...]) -> None:
    ca.issue()
    assert _count(ca, *issuers) == (0, ())
