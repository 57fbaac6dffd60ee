"""What ``status`` reports: the slots and their roles, the pure thresholds, the leaves that
hold a draining authority, the bundle version, acknowledgements and pending upstream keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citadel.ca.rotation.acks import AckSnapshot, bundle_version
from citadel.ca.rotation.slots import Slot
from citadel.ca.rotation.status import rotation_status, status_document
from citadel.ca.rotation_schedule import activation_threshold, preparation_threshold
from citadel.ca.upstream import create_intermediate_csr
from citadel.identity.clock import ManualClock
from tests.unit.ca.lifecycle_kit import PROPAGATION, LifecycleCa, lifecycle_ca


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


def _roles(views: tuple[object, ...]) -> list[str]:
    return [v.role for v in views]  # type: ignore[attr-defined]


def test_a_fresh_ca_has_only_current_authorities_and_spiffe_thresholds(ca: LifecycleCa) -> None:
    status = rotation_status(ca.rotation, ca.key_manager, ca.clock.now(), acks=None)
    signer = ca.rotation.slots().signer
    assert _roles(status.root.authorities) == ["current"]
    assert _roles(status.intermediate.authorities) == ["current"]
    assert status.intermediate.prepare_at == preparation_threshold(
        signer.not_before, signer.not_after
    )
    assert status.intermediate.activate_at == activation_threshold(
        signer.not_before, signer.not_after
    )
    assert status.agents_acknowledged is None and status.agents_known is None
    document = status_document(status)
    assert document["bundle"]["agents_acknowledged"] == "unknown"


def test_during_a_root_rotation_every_slot_and_its_holding_leaves_show(ca: LifecycleCa) -> None:
    ca.issue("holder")
    ca.rotation.prepare(Slot.ROOT)
    status = rotation_status(ca.rotation, ca.key_manager, ca.clock.now(), acks=None)
    assert _roles(status.root.authorities) == ["current", "next"]
    assert _roles(status.intermediate.authorities) == ["current", "next-with-root"]
    root_next = status.root.authorities[1]
    assert status.root.next_activation_allowed_at == root_next.created_at + PROPAGATION
    ca.clock.advance(PROPAGATION)
    ca.rotation.activate(Slot.ROOT)
    status = rotation_status(ca.rotation, ca.key_manager, ca.clock.now(), acks=None)
    assert _roles(status.root.authorities) == ["current", "draining"]
    assert status.root.authorities[1].remaining_leaves == 1
    assert status.intermediate.authorities[1].remaining_leaves == 1


def test_acknowledgements_are_counted_against_the_current_bundle_version(ca: LifecycleCa) -> None:
    version = bundle_version(ca.bundle())
    acks = AckSnapshot({version: 4, "stale": 1})
    status = rotation_status(ca.rotation, ca.key_manager, ca.clock.now(), acks=acks)
    assert status.bundle_version == version
    assert (status.agents_acknowledged, status.agents_known) == (4, 5)
    ca.rotation.prepare(Slot.ROOT)  # a new root: the version moves, nobody has it yet
    status = rotation_status(ca.rotation, ca.key_manager, ca.clock.now(), acks=acks)
    assert status.bundle_version != version and status.agents_acknowledged == 0


def test_pending_upstream_keys_are_listed(ca: LifecycleCa) -> None:
    pending = create_intermediate_csr(
        repository=ca.repository, key_manager=ca.key_manager, clock=ca.clock, config=ca.config
    )
    status = rotation_status(ca.rotation, ca.key_manager, ca.clock.now(), acks=None)
    assert status.pending_upstream_keys == (pending.key_id,)
