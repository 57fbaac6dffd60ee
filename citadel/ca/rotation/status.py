"""What ``citadel ca rotate status`` shows: each slot, its thresholds, what holds a draining
authority in place, the bundle version and how many agents acknowledged it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from citadel.ca.authority_records import PENDING_UPSTREAM_KIND, certificate_of, is_own
from citadel.ca.keymanager.base import KeyManager
from citadel.ca.rotation.acks import AckSnapshot, bundle_version
from citadel.ca.rotation.slots import AuthoritySlots, Slot
from citadel.ca.rotation.steps import AuthorityRotation
from citadel.ca.rotation_schedule import activation_threshold, preparation_threshold
from citadel.store.records import AuthorityRecord

__all__ = ["AuthorityView", "RotationStatus", "SlotStatus", "rotation_status", "status_document"]


@dataclass(frozen=True, kw_only=True)
class AuthorityView:
    id: str
    role: str  # current | next | next-with-root | draining
    state: str
    serial: str
    sha256: str
    not_before: datetime
    not_after: datetime
    created_at: datetime
    activated_at: datetime | None
    held_by_citadel: bool
    remaining_leaves: int | None = None  # draining intermediates/roots only

    @classmethod
    def of(
        cls, record: AuthorityRecord, role: str, remaining_leaves: int | None = None
    ) -> AuthorityView:
        return cls(
            id=record.id,
            role=role,
            state=record.state,
            serial=record.serial_hex,
            sha256=record.fingerprint_sha256,
            not_before=record.not_before,
            not_after=record.not_after,
            created_at=record.created_at,
            activated_at=record.activated_at,
            held_by_citadel=is_own(record),
            remaining_leaves=remaining_leaves,
        )


@dataclass(frozen=True, kw_only=True)
class SlotStatus:
    slot: Slot
    authorities: tuple[AuthorityView, ...]
    prepare_at: datetime
    activate_at: datetime
    next_activation_allowed_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class RotationStatus:
    root: SlotStatus
    intermediate: SlotStatus
    bundle_version: str
    bundle_roots: tuple[str, ...]
    agents_acknowledged: int | None  # None: unknown (nothing reports acknowledgements)
    agents_known: int | None
    pending_upstream_keys: tuple[str, ...]


def _root_slot(rotation: AuthorityRotation, slots: AuthoritySlots, now: datetime) -> SlotStatus:
    views = [AuthorityView.of(slots.root, "current")]
    allowed = None
    if slots.next_root is not None:
        views.append(AuthorityView.of(slots.next_root, "next"))
        allowed = slots.next_root.created_at + rotation.policy.propagation_delay
    for root in slots.draining_roots:
        below = [d for d in slots.descendants(root) if is_own(d)]
        count = rotation.remaining_leaves(below, now).count
        views.append(AuthorityView.of(root, "draining", count))
    return SlotStatus(
        slot=Slot.ROOT,
        authorities=tuple(views),
        prepare_at=preparation_threshold(slots.root.not_before, slots.root.not_after),
        activate_at=activation_threshold(slots.root.not_before, slots.root.not_after),
        next_activation_allowed_at=allowed,
    )


def _intermediate_slot(
    rotation: AuthorityRotation, slots: AuthoritySlots, now: datetime
) -> SlotStatus:
    views = [AuthorityView.of(slots.signer, "current")]
    allowed = None
    if slots.next_intermediate is not None:
        views.append(AuthorityView.of(slots.next_intermediate, "next"))
        allowed = (
            slots.next_intermediate.created_at + rotation.policy.intermediate_propagation_delay
        )
    if slots.next_root_intermediate is not None:  # activates with its root
        views.append(AuthorityView.of(slots.next_root_intermediate, "next-with-root"))
    for record in slots.draining_intermediates:
        count = rotation.remaining_leaves([record], now).count
        views.append(AuthorityView.of(record, "draining", count))
    return SlotStatus(
        slot=Slot.INTERMEDIATE,
        authorities=tuple(views),
        prepare_at=preparation_threshold(slots.signer.not_before, slots.signer.not_after),
        activate_at=activation_threshold(slots.signer.not_before, slots.signer.not_after),
        next_activation_allowed_at=allowed,
    )


def _pending_upstream(key_manager: KeyManager, slots: AuthoritySlots) -> tuple[str, ...]:
    used = {r.key_ref for r in slots.records}
    prefix = PENDING_UPSTREAM_KIND + "-"
    return tuple(k for k in key_manager.list_keys() if k.startswith(prefix) and k not in used)


def rotation_status(
    rotation: AuthorityRotation,
    key_manager: KeyManager,
    now: datetime,
    *,
    acks: AckSnapshot | None,
) -> RotationStatus:
    slots = rotation.slots()
    roots = [r for r in slots.records if r.kind == "root" and r.state in ("active", "prepared")]
    version = bundle_version(certificate_of(r) for r in roots)
    return RotationStatus(
        root=_root_slot(rotation, slots, now),
        intermediate=_intermediate_slot(rotation, slots, now),
        bundle_version=version,
        bundle_roots=tuple(r.id for r in roots),
        agents_acknowledged=None if acks is None else acks.acknowledged(version),
        agents_known=None if acks is None else acks.agents,
        pending_upstream_keys=_pending_upstream(key_manager, slots),
    )


def _slot_document(status: SlotStatus) -> dict[str, Any]:
    return {
        "prepare_at": status.prepare_at,
        "activate_at": status.activate_at,
        "next_activation_allowed_at": status.next_activation_allowed_at,
        "authorities": [
            {
                "id": v.id,
                "role": v.role,
                "state": v.state,
                "serial": v.serial,
                "sha256": v.sha256,
                "not_before": v.not_before,
                "not_after": v.not_after,
                "created_at": v.created_at,
                "activated_at": v.activated_at,
                "held_by_citadel": v.held_by_citadel,
                "remaining_leaves": v.remaining_leaves,
            }
            for v in status.authorities
        ],
    }


def status_document(status: RotationStatus) -> dict[str, Any]:
    """A JSON-ready description (datetimes are left for the renderer)."""
    return {
        "root": _slot_document(status.root),
        "intermediate": _slot_document(status.intermediate),
        "bundle": {
            "version": status.bundle_version,
            "roots": list(status.bundle_roots),
            "agents_acknowledged": (
                "unknown" if status.agents_acknowledged is None else status.agents_acknowledged
            ),
            "agents_known": "unknown" if status.agents_known is None else status.agents_known,
        },
        "pending_upstream_keys": list(status.pending_upstream_keys),
    }
