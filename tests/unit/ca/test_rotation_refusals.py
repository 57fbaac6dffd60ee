"""Rotation steps that must be refused: each a clear typed error, and nothing changed in the
store (authorities, certificates, revocations, audit chain) or the key manager."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.authority_errors import (
    AlreadyPreparedError,
    NothingPreparedError,
    NothingToRetireError,
    NothingToRollBackError,
    PropagationPendingError,
    RetireRefusedError,
    RotationBusyError,
)
from citadel.ca.rotation.lock import ROTATION_LOCK
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.slots import Slot
from citadel.identity.clock import ManualClock
from tests.unit.ca.lifecycle_kit import PROPAGATION, LifecycleCa, lifecycle_ca


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


@pytest.mark.parametrize("slot", list(Slot), ids=lambda s: s.value)
def test_activating_a_slot_that_was_never_prepared_is_refused_and_changes_nothing(
    ca: LifecycleCa, slot: Slot
) -> None:
    before = ca.snapshot()
    with pytest.raises(NothingPreparedError, match="nothing to activate"):
        ca.rotation.activate(slot, force=True)
    assert ca.snapshot() == before


def test_activating_the_intermediate_slot_when_only_a_root_is_prepared_names_the_root_flag(
    ca: LifecycleCa,
) -> None:
    ca.rotation.prepare(Slot.ROOT)
    before = ca.snapshot()
    with pytest.raises(NothingPreparedError, match="use --root"):
        ca.rotation.activate(Slot.INTERMEDIATE)
    assert ca.snapshot() == before


def test_retiring_an_intermediate_whose_leaves_are_still_valid_is_refused_and_changes_nothing(
    ca: LifecycleCa,
) -> None:
    leaf = ca.issue("holder")
    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.rotation.activate(Slot.INTERMEDIATE)
    before = ca.snapshot()
    with pytest.raises(RetireRefusedError) as caught:
        ca.rotation.retire(Slot.INTERMEDIATE)
    assert "1 unexpired leaf" in caught.value.message
    assert leaf.serial_hex in caught.value.message
    assert "--force" in caught.value.message
    assert ca.snapshot() == before


def test_retiring_a_root_whose_leaves_are_still_valid_is_refused_and_explains_force(
    ca: LifecycleCa,
) -> None:
    ca.issue("holder")
    ca.rotation.prepare(Slot.ROOT)
    ca.clock.advance(PROPAGATION)
    ca.rotation.activate(Slot.ROOT)
    before = ca.snapshot()
    with pytest.raises(RetireRefusedError) as caught:
        ca.rotation.retire(Slot.ROOT)
    assert "will fail mTLS" in caught.value.message
    assert ca.snapshot() == before


def test_revoked_leaves_do_not_hold_an_authority_in_place(ca: LifecycleCa) -> None:
    leaf = ca.issue("holder")
    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.rotation.activate(Slot.INTERMEDIATE)
    ca.revoker().revoke_serial(leaf.serial_hex, "superseded")
    ca.rotation.retire(Slot.INTERMEDIATE)


@pytest.mark.parametrize("slot", list(Slot), ids=lambda s: s.value)
def test_preparing_twice_is_refused_and_changes_nothing(ca: LifecycleCa, slot: Slot) -> None:
    ca.rotation.prepare(slot)
    before = ca.snapshot()
    with pytest.raises(AlreadyPreparedError, match="already prepared"):
        ca.rotation.prepare(slot)
    assert ca.snapshot() == before


def test_activating_a_root_before_the_propagation_delay_is_refused_unless_forced(
    ca: LifecycleCa,
) -> None:
    ca.rotation.prepare(Slot.ROOT)
    ca.clock.advance(PROPAGATION - timedelta(seconds=1))
    before = ca.snapshot()
    with pytest.raises(PropagationPendingError, match="--force"):
        ca.rotation.activate(Slot.ROOT)
    assert ca.snapshot() == before
    ca.rotation.activate(Slot.ROOT, force=True)
    assert ca.repository.list_audit(limit=10_000)[-1].payload["forced"] is True


@pytest.mark.parametrize("slot", list(Slot), ids=lambda s: s.value)
def test_retiring_with_nothing_draining_is_refused_and_changes_nothing(
    ca: LifecycleCa, slot: Slot
) -> None:
    before = ca.snapshot()
    with pytest.raises(NothingToRetireError):
        ca.rotation.retire(slot, force=True)
    assert ca.snapshot() == before


@pytest.mark.parametrize("slot", list(Slot), ids=lambda s: s.value)
def test_rolling_back_with_nothing_to_return_to_is_refused_and_changes_nothing(
    ca: LifecycleCa, slot: Slot
) -> None:
    before = ca.snapshot()
    with pytest.raises(NothingToRollBackError):
        ca.rotation.rollback(slot)
    assert ca.snapshot() == before


def test_rollback_after_the_old_intermediate_was_retired_is_refused(ca: LifecycleCa) -> None:
    ca.rotation.prepare(Slot.INTERMEDIATE)
    ca.rotation.activate(Slot.INTERMEDIATE)
    ca.rotation.retire(Slot.INTERMEDIATE)
    before = ca.snapshot()
    with pytest.raises(NothingToRollBackError, match="retired one cannot come back"):
        ca.rotation.rollback(Slot.INTERMEDIATE)
    assert ca.snapshot() == before


@pytest.mark.parametrize(
    "step",
    ["prepare", "activate", "retire", "rollback"],
)
def test_a_step_while_another_process_holds_the_rotation_lock_is_refused(
    ca: LifecycleCa, step: str
) -> None:
    assert ca.repository.try_acquire_lock(
        ROTATION_LOCK, "other-replica", timedelta(minutes=1), ca.clock.now()
    )
    before = ca.snapshot()
    with pytest.raises(RotationBusyError, match="another Citadel process"):
        getattr(ca.rotation, step)(Slot.INTERMEDIATE)
    assert ca.snapshot() == before


def test_the_lock_is_released_after_a_refused_step(ca: LifecycleCa) -> None:
    with pytest.raises(NothingPreparedError):
        ca.rotation.activate(Slot.INTERMEDIATE)
    assert ca.repository.try_acquire_lock(
        ROTATION_LOCK, "other-replica", timedelta(minutes=1), ca.clock.now()
    )


def test_activating_an_intermediate_before_its_crl_can_spread_is_refused_unless_forced(
    tmp_path: Path, clock: ManualClock
) -> None:
    policy = RotationPolicy(intermediate_propagation_delay=timedelta(minutes=10))
    with lifecycle_ca(tmp_path, clock, policy=policy) as ca:
        ca.rotation.prepare(Slot.INTERMEDIATE)
        ca.clock.advance(timedelta(minutes=9))
        before = ca.snapshot()
        with pytest.raises(PropagationPendingError, match="its CRL"):
            ca.rotation.activate(Slot.INTERMEDIATE)
        assert ca.snapshot() == before
        ca.clock.advance(timedelta(minutes=1))
        ca.rotation.activate(Slot.INTERMEDIATE)
