"""The automatic rotation job: thresholds, propagation delay, retirement, and the singleton
lock. The long-run test walks a manual clock through several intermediate rotations and a
root rotation and checks, at every step, that every unexpired leaf still verifies against the
bundle the issuer hands out (zero downtime)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.issued_chain import IssuedChain
from citadel.ca.rotation.lock import ROTATION_LOCK
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.schedule import RotationJob
from citadel.identity.chain import verify_svid_chain
from citadel.identity.clock import ManualClock
from tests.unit.ca.lifecycle_kit import LifecycleCa, lifecycle_ca

DAY = timedelta(days=1)
POLICY = RotationPolicy(
    propagation_delay=timedelta(hours=6), retire_check_interval=timedelta(hours=1)
)
SHORT_LIVED = {
    "root_ttl": 120 * DAY,
    "intermediate_ttl": 30 * DAY,
    "default_ttl": DAY,
    "max_ttl": 2 * DAY,
}


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock, policy=POLICY, **SHORT_LIVED) as opened:
        yield opened


def _steps(job: RotationJob) -> list[tuple[str, str]]:
    return [(r.action, r.slot.value) for r in job.run_once()]


def test_nothing_is_due_for_a_fresh_ca(ca: LifecycleCa) -> None:
    before = ca.snapshot()
    assert RotationJob(ca.rotation, ca.clock).run_once() == []
    assert ca.snapshot() == before


def test_the_intermediate_is_prepared_at_half_life_and_activated_at_five_sixths(
    ca: LifecycleCa,
) -> None:
    job = RotationJob(ca.rotation, ca.clock)
    signer = ca.rotation.slots().signer
    life = signer.not_after - signer.not_before
    ca.clock.set(signer.not_before + life / 2 - timedelta(minutes=1))
    assert _steps(job) == []
    ca.clock.advance(timedelta(minutes=2))
    assert _steps(job) == [("prepare", "intermediate")]
    ca.clock.set(signer.not_after - life / 6 - timedelta(minutes=1))
    assert _steps(job) == []
    ca.clock.advance(timedelta(minutes=2))
    assert _steps(job) == [("activate", "intermediate")]
    events = [e for e in ca.repository.list_audit(limit=10_000) if e.action.startswith("ca.")]
    assert {e.payload["trigger"] for e in events} == {"schedule"}


def test_root_activation_waits_for_the_propagation_delay(ca: LifecycleCa) -> None:
    job = RotationJob(ca.rotation, ca.clock)
    root = ca.rotation.slots().root
    # jump straight past the root's activation threshold: prepare now, activate later
    ca.clock.set(root.not_after - 5 * DAY)
    steps = _steps(job)
    assert ("prepare", "root") in steps and ("activate", "root") not in steps
    ca.clock.advance(POLICY.propagation_delay - timedelta(minutes=1))
    assert ("activate", "root") not in _steps(job)
    ca.clock.advance(timedelta(minutes=2))
    assert ("activate", "root") in _steps(job)


def test_a_replica_without_the_lock_does_nothing(ca: LifecycleCa) -> None:
    root = ca.rotation.slots().root
    ca.clock.set(root.not_after - 5 * DAY)
    assert ca.repository.try_acquire_lock(
        ROTATION_LOCK, "other", timedelta(minutes=5), ca.clock.now()
    )
    before = ca.snapshot()
    assert RotationJob(ca.rotation, ca.clock).run_once() == []
    assert ca.snapshot() == before


def _unexpired(leaves: list[IssuedChain], ca: LifecycleCa) -> list[IssuedChain]:
    now = ca.clock.now()
    return [c for c in leaves if c.leaf.not_valid_after_utc > now]


def test_a_long_run_rotates_everything_without_invalidating_a_single_valid_leaf(
    ca: LifecycleCa,
) -> None:
    job = RotationJob(ca.rotation, ca.clock)
    first_root = ca.rotation.slots().root
    leaves: list[IssuedChain] = []
    done: list[tuple[str, str]] = []
    for _ in range(130 * 4):  # 130 days in 6-hour ticks
        ca.clock.advance(timedelta(hours=6))
        done.extend(_steps(job))
        ca.watcher.poll()
        leaves.append(ca.issue("w", ttl=2 * DAY))
        for chain in _unexpired(leaves, ca):
            verify_svid_chain(chain.leaf, chain.intermediates, ca.bundle(), at=ca.clock.now())
        leaves = _unexpired(leaves, ca)
    assert done.count(("prepare", "root")) == 1
    assert done.count(("activate", "root")) == 1
    assert done.count(("retire", "root")) == 1
    assert done.count(("activate", "intermediate")) >= 3
    assert ca.repository.get_authority(first_root.id).state == "retired"
    slots = ca.rotation.slots()
    assert slots.root.id != first_root.id
    assert len(ca.bundle()) == 1
    assert ca.repository.verify_audit_chain().ok
