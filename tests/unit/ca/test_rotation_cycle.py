"""Whole prepare -> activate -> retire cycles for the root and the intermediate, with a manual
clock: leaves issued before and after activation verify while both roots are trusted, and
old leaves stop verifying once their root is retired."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.authority_records import certificate_of
from citadel.ca.rotation.slots import Slot
from citadel.identity.clock import ManualClock
from citadel.identity.errors import ChainVerificationError
from citadel.identity.pem import certificate_fingerprint
from tests.unit.ca.lifecycle_kit import PROPAGATION, LifecycleCa, lifecycle_ca

DAY = timedelta(days=1)


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


def _fingerprints(ca: LifecycleCa) -> set[str]:
    return {certificate_fingerprint(c) for c in ca.bundle()}


def test_root_cycle_keeps_old_and_new_leaves_valid_until_the_old_root_is_retired(
    ca: LifecycleCa,
) -> None:
    old_root = ca.rotation.slots().root
    before = ca.issue("before")

    prepared = ca.rotation.prepare(Slot.ROOT)
    assert ca.watcher.poll()
    new_root = ca.rotation.slots().next_root
    assert new_root is not None and new_root.id == prepared.authority_ids[0]
    assert _fingerprints(ca) == {old_root.fingerprint_sha256, new_root.fingerprint_sha256}
    still_old = ca.issue("still-old")
    assert still_old.intermediates == before.intermediates  # prepared roots do not sign
    assert ca.verifies(before)

    ca.clock.advance(PROPAGATION)
    ca.rotation.activate(Slot.ROOT)
    assert ca.watcher.poll()
    after = ca.issue("after")
    assert after.intermediates[0].issuer == certificate_of(new_root).subject
    assert ca.verifies(before) and ca.verifies(after) and ca.verifies(still_old)

    ca.clock.advance(2 * DAY)  # every leaf of the old intermediate (24 h) has expired
    ca.rotation.retire(Slot.ROOT)
    assert ca.watcher.poll()
    assert _fingerprints(ca) == {new_root.fingerprint_sha256}
    fresh = ca.issue("fresh")
    assert ca.verifies(fresh)
    with pytest.raises(ChainVerificationError):  # inside its validity, but its root is gone
        ca.verifies(before, at_offset=-2 * DAY)
    states = {r.id: r.state for r in ca.repository.list_authorities()}
    assert states[old_root.id] == "retired"
    assert sorted(states.values()) == ["active", "active", "retired", "retired"]


def test_forced_root_retirement_breaks_old_leaves_at_once(ca: LifecycleCa) -> None:
    before = ca.issue("before")
    ca.rotation.prepare(Slot.ROOT)
    ca.clock.advance(PROPAGATION)
    ca.rotation.activate(Slot.ROOT)
    result = ca.rotation.retire(Slot.ROOT, force=True)
    event = ca.repository.list_audit(limit=10_000)[-1]
    ca.watcher.poll()
    with pytest.raises(ChainVerificationError):
        ca.verifies(before)
    assert ca.verifies(ca.issue("after"))
    assert event.action == "ca.rotate.retire"
    assert event.payload["forced"] is True and event.payload["remaining_leaves"] == 1
    assert result.slot is Slot.ROOT


def test_intermediate_cycle_switches_signer_without_changing_the_bundle(ca: LifecycleCa) -> None:
    bundle = _fingerprints(ca)
    old = ca.rotation.slots().signer
    before = ca.issue("before")

    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.watcher.poll()
    assert ca.issuer.signer.fingerprint == old.fingerprint_sha256  # prepared does not sign
    ca.rotation.activate(Slot.INTERMEDIATE)  # no propagation delay: the bundle is unchanged
    assert ca.watcher.poll()
    after = ca.issue("after")
    assert after.intermediates[0] != before.intermediates[0]
    assert _fingerprints(ca) == bundle
    assert ca.verifies(before) and ca.verifies(after)

    ca.clock.advance(2 * DAY)
    ca.rotation.retire(Slot.INTERMEDIATE)
    ca.watcher.poll()
    assert ca.repository.get_authority(old.id).state == "retired"
    assert _fingerprints(ca) == bundle
    assert ca.verifies(ca.issue("fresh"))


def test_every_step_is_audited_with_its_slot_and_trigger(ca: LifecycleCa) -> None:
    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.rotation.activate(Slot.INTERMEDIATE)
    ca.rotation.rollback(Slot.INTERMEDIATE)
    ca.rotation.prepare(Slot.ROOT)
    ca.clock.advance(PROPAGATION)
    ca.rotation.activate(Slot.ROOT)
    ca.rotation.retire(Slot.ROOT)
    actions = [
        (e.action, e.payload["slot"], e.payload["trigger"])
        for e in ca.repository.list_audit(limit=10_000)
        if e.action.startswith("ca.rotate.")
    ]
    assert actions == [
        ("ca.rotate.prepare", "intermediate", "manual"),
        ("ca.rotate.activate", "intermediate", "manual"),
        ("ca.rotate.rollback", "intermediate", "manual"),
        ("ca.rotate.prepare", "root", "manual"),
        ("ca.rotate.activate", "root", "manual"),
        ("ca.rotate.retire", "root", "manual"),
    ]
    assert ca.repository.verify_audit_chain().ok


def test_intermediate_rollback_returns_signing_to_the_previous_intermediate(
    ca: LifecycleCa,
) -> None:
    old = ca.rotation.slots().signer
    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.rotation.activate(Slot.INTERMEDIATE)
    ca.watcher.poll()
    during = ca.issue("during")
    ca.rotation.rollback(Slot.INTERMEDIATE)
    ca.watcher.poll()
    assert ca.issuer.signer.fingerprint == old.fingerprint_sha256
    assert ca.verifies(during)  # same root: leaves of the rolled-back one stay valid


def test_root_rollback_returns_to_the_old_root_and_keeps_the_new_one_trusted(
    ca: LifecycleCa,
) -> None:
    old = ca.rotation.slots()
    ca.rotation.prepare(Slot.ROOT)
    ca.clock.advance(PROPAGATION)
    ca.rotation.activate(Slot.ROOT)
    ca.watcher.poll()
    during = ca.issue("during")
    new_root = ca.rotation.slots().root
    ca.rotation.rollback(Slot.ROOT)
    ca.watcher.poll()
    slots = ca.rotation.slots()
    assert slots.signer.id == old.signer.id and slots.root.id == old.root.id
    assert [r.id for r in slots.draining_roots] == [new_root.id]
    assert ca.verifies(during) and ca.verifies(ca.issue("after"))


def test_rollback_of_a_prepared_root_cancels_it_and_drops_it_from_the_bundle(
    ca: LifecycleCa,
) -> None:
    bundle = _fingerprints(ca)
    ca.rotation.prepare(Slot.ROOT)
    ca.watcher.poll()
    assert len(_fingerprints(ca)) == 2
    ca.rotation.rollback(Slot.ROOT)
    ca.watcher.poll()
    assert _fingerprints(ca) == bundle
    assert ca.rotation.slots().next_root is None


def test_rotated_authorities_get_distinct_subjects(ca: LifecycleCa) -> None:
    ca.rotation.prepare(Slot.ROOT)
    subjects = [certificate_of(r).subject for r in ca.repository.list_authorities()]
    assert len(set(subjects)) == len(subjects) == 4
