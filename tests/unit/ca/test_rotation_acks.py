"""Bundle versions and the acknowledgement counts ``status`` shows."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.rotation.acks import (
    AckSnapshot,
    InMemoryBundleAcks,
    bundle_version,
    read_snapshot,
    write_snapshot,
)
from citadel.identity.clock import ManualClock
from tests.unit.ca.lifecycle_kit import OperatorCa


def test_the_bundle_version_ignores_order_and_duplicates(clock: ManualClock) -> None:
    a, b = OperatorCa.root(clock, "a").cert, OperatorCa.root(clock, "b").cert
    assert bundle_version([a, b]) == bundle_version([b, a, b])
    assert bundle_version([a]) != bundle_version([a, b])
    assert len(bundle_version([a])) == 16


def test_nothing_recorded_means_unknown_not_zero(clock: ManualClock) -> None:
    assert InMemoryBundleAcks().snapshot(clock.now()) is None


def test_each_agent_counts_once_with_its_latest_version(clock: ManualClock) -> None:
    acks = InMemoryBundleAcks(forget_after=timedelta(hours=1))
    acks.record("agent-1", "v1", clock.now())
    acks.record("agent-2", "v1", clock.now())
    acks.record("agent-1", "v2", clock.now())
    snapshot = acks.snapshot(clock.now())
    assert snapshot is not None
    assert (snapshot.acknowledged("v2"), snapshot.acknowledged("v1"), snapshot.agents) == (1, 1, 2)
    clock.advance(timedelta(hours=2))  # silent agents are forgotten
    assert acks.snapshot(clock.now()) is None


@pytest.mark.parametrize("agent,version", [("", "v"), ("a", ""), ("a" * 5000, "v")])
def test_malformed_acknowledgements_are_refused(
    clock: ManualClock, agent: str, version: str
) -> None:
    with pytest.raises(ValueError):
        InMemoryBundleAcks().record(agent, version, clock.now())


def test_a_snapshot_round_trips_and_goes_stale(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "acks.json"
    write_snapshot(path, AckSnapshot({"v1": 3}), clock.now())
    read = read_snapshot(path, clock.now(), max_age=timedelta(minutes=5))
    assert read is not None and read.acknowledged("v1") == 3
    assert (
        read_snapshot(path, clock.now() + timedelta(minutes=6), max_age=timedelta(minutes=5))
        is None
    )


@pytest.mark.parametrize(
    "content", [b"", b"{", b"[]", b'{"taken_at": "x", "versions": {}}', b"\x00" * 10], ids=repr
)
def test_a_damaged_snapshot_reads_as_unknown(
    tmp_path: Path, clock: ManualClock, content: bytes
) -> None:
    path = tmp_path / "acks.json"
    path.write_bytes(content)
    assert read_snapshot(path, clock.now(), max_age=timedelta(minutes=5)) is None
