"""The rotation steps: prepare, activate, retire and roll back a root or an intermediate.

Each step runs under the ``ca-rotation`` store lock, checks everything first (a refused step
changes nothing), writes the authority states in an order where every intermediate state is
safe, and appends one audit event. Running processes pick the change up through
:class:`citadel.ca.authority_watch.AuthorityWatcher`.

State use (see :mod:`.slots`): ``prepared`` = next (a prepared root is already in the trust
bundle), ``active`` = current or draining (an active root stays in the bundle), ``retired`` =
gone from the bundle and never signs again.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from citadel.ca.authority import Authority, new_intermediate_certificate, new_root_certificate
from citadel.ca.authority_errors import (
    AlreadyPreparedError,
    ExternalAuthorityError,
    NothingPreparedError,
    NothingToRetireError,
    NothingToRollBackError,
    PropagationPendingError,
    RetireRefusedError,
    RotationError,
)
from citadel.ca.authority_records import (
    authority_record,
    certificate_of,
    is_own,
    new_key_id,
    short_id,
)
from citadel.ca.config import CaConfig
from citadel.ca.errors import KeyManagerError
from citadel.ca.keymanager.base import KeyManager
from citadel.ca.rotation.leaf_census import LeafCensus, LeafCount
from citadel.ca.rotation.lock import RotationLock
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.slots import AuthoritySlots, Slot, read_slots
from citadel.identity.clock import Clock
from citadel.identity.spiffe_id import TrustDomain
from citadel.store.errors import StoreError
from citadel.store.records import AuthorityRecord
from citadel.store.repository import Repository

__all__ = ["AuthorityRotation", "StepResult"]

_log = logging.getLogger(__name__)
AUDIT_PREFIX = "ca.rotate."


@dataclass(frozen=True, kw_only=True)
class StepResult:
    """What a step did: its action, the slot, the authorities it changed and a sentence."""

    action: str
    slot: Slot
    authority_ids: tuple[str, ...]
    message: str


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _activation_time(slots: AuthoritySlots, now: datetime) -> datetime:
    """``now``, or just after the latest activation if the clock has not moved past it: the
    signer is the most recently activated intermediate, so the new one must be strictly
    the latest (a manual or coarse clock can repeat a timestamp)."""
    latest = max((r.activated_at for r in slots.records if r.activated_at), default=now)
    return max(now, latest + timedelta(microseconds=1))


def _describe(record: AuthorityRecord) -> dict[str, str]:
    return {"id": record.id, "serial": record.serial_hex, "sha256": record.fingerprint_sha256}


class AuthorityRotation:
    """Manual and scheduled rotation steps over the repository and the key manager."""

    def __init__(
        self,
        *,
        repository: Repository,
        key_manager: KeyManager,
        clock: Clock,
        config: CaConfig,
        policy: RotationPolicy | None = None,
        census: LeafCensus | None = None,
        lock_holder: str | None = None,
    ) -> None:
        self._repo = repository
        self._keys = key_manager
        self._clock = clock
        self._config = config
        self.policy = policy or RotationPolicy()
        self._census = census or LeafCensus(repository)
        self._lock = RotationLock(repository, clock, ttl=self.policy.lock_ttl, holder=lock_holder)

    @property
    def lock(self) -> RotationLock:
        return self._lock

    @property
    def trust_domain(self) -> TrustDomain:
        return self._config.trust_domain

    def slots(self) -> AuthoritySlots:
        return read_slots(self._repo.list_authorities())

    # ------------------------------------------------------------------ prepare

    def prepare(self, slot: Slot, *, trigger: str = "manual") -> StepResult:
        """Create the next authority for ``slot`` (a root comes with an intermediate).

        Raises:
            AlreadyPreparedError: a next authority already exists.
            ExternalAuthorityError: the current root's key is held by another CA.
            RotationBusyError: another process is rotating.
        """
        with self._lock.held():
            slots = self.slots()
            if slot is Slot.ROOT:
                return self._prepare_root(slots, trigger)
            return self._prepare_intermediate(slots, trigger)

    def _own_root(self, record: AuthorityRecord) -> Authority:
        if not is_own(record):
            raise ExternalAuthorityError(
                f"root {record.id} is held by another CA, so Citadel cannot sign a new "
                "intermediate under it; install one through the plug-in CA directory or "
                "'citadel ca intermediate-csr' and 'citadel ca import'"
            )
        return Authority(certificate_of(record), self._keys.get_key(record.key_ref))

    def _prepare_intermediate(self, slots: AuthoritySlots, trigger: str) -> StepResult:
        if slots.next_intermediate is not None:
            raise AlreadyPreparedError(
                f"intermediate {slots.next_intermediate.id} is already prepared; activate it "
                "or roll it back first"
            )
        now = self._clock.now()
        parent = self._own_root(slots.root)
        if parent.not_after <= now:
            raise RotationError(f"the current root {slots.root.id} has expired; rotate the root")
        key_id = new_key_id("intermediate", now)
        key = self._keys.generate_key(key_id, self._config.key_type)
        try:
            cert = new_intermediate_certificate(
                key,
                parent,
                trust_domain=self._config.trust_domain,
                now=now,
                ttl=self._config.intermediate_ttl,
                skew=self._config.skew,
                tag=short_id(key_id),
            )
            record = self._repo.save_authority(
                authority_record(
                    authority_id=key_id,
                    kind="intermediate",
                    cert=cert,
                    key_ref=key_id,
                    parent_id=slots.root.id,
                    state="prepared",
                    now=now,
                )
            )
        except BaseException:
            self._discard_keys([key_id])
            raise
        self._audit(
            "prepare", record, {"slot": "intermediate", "trigger": trigger, **_describe(record)}
        )
        return StepResult(
            action="prepare",
            slot=Slot.INTERMEDIATE,
            authority_ids=(record.id,),
            message=(
                f"prepared intermediate {record.id} (serial {record.serial_hex}) under root "
                f"{slots.root.id}; activate it with 'citadel ca rotate activate --intermediate'"
            ),
        )

    def _prepare_root(self, slots: AuthoritySlots, trigger: str) -> StepResult:
        if slots.next_root is not None:
            raise AlreadyPreparedError(
                f"root {slots.next_root.id} is already prepared; activate it or roll it back first"
            )
        now = self._clock.now()
        config = self._config
        root_id = new_key_id("root", now)
        intermediate_id = new_key_id("intermediate", now)
        created: list[str] = []
        saved_root: AuthorityRecord | None = None
        try:
            root_key = self._keys.generate_key(root_id, config.key_type)
            created.append(root_id)
            root_cert = new_root_certificate(
                root_key,
                trust_domain=config.trust_domain,
                now=now,
                ttl=config.root_ttl,
                skew=config.skew,
                tag=short_id(root_id),
            )
            key = self._keys.generate_key(intermediate_id, config.key_type)
            created.append(intermediate_id)
            cert = new_intermediate_certificate(
                key,
                Authority(root_cert, root_key),
                trust_domain=config.trust_domain,
                now=now,
                ttl=config.intermediate_ttl,
                skew=config.skew,
                tag=short_id(intermediate_id),
            )
            saved_root = self._repo.save_authority(
                authority_record(
                    authority_id=root_id,
                    kind="root",
                    cert=root_cert,
                    key_ref=root_id,
                    parent_id=None,
                    state="prepared",
                    now=now,
                )
            )
            intermediate = self._repo.save_authority(
                authority_record(
                    authority_id=intermediate_id,
                    kind="intermediate",
                    cert=cert,
                    key_ref=intermediate_id,
                    parent_id=root_id,
                    state="prepared",
                    now=now,
                )
            )
        except BaseException:
            if saved_root is not None:
                with contextlib.suppress(StoreError):
                    self._repo.set_authority_state(root_id, "retired", now)
            self._discard_keys(created)
            raise
        ready_at = now + self.policy.propagation_delay
        self._audit(
            "prepare",
            saved_root,
            {
                "slot": "root",
                "trigger": trigger,
                **_describe(saved_root),
                "intermediate": _describe(intermediate),
                "activation_allowed_at": _when(ready_at),
            },
        )
        return StepResult(
            action="prepare",
            slot=Slot.ROOT,
            authority_ids=(root_id, intermediate_id),
            message=(
                f"prepared root {root_id} (serial {saved_root.serial_hex}) with intermediate "
                f"{intermediate_id}; the root is in the trust bundle now; activate it from "
                f"{_when(ready_at)} with 'citadel ca rotate activate --root'"
            ),
        )

    def _discard_keys(self, key_ids: Iterable[str]) -> None:
        for key_id in key_ids:
            with contextlib.suppress(KeyManagerError):
                self._keys.delete_key(key_id)

    # ----------------------------------------------------------------- activate

    def activate(self, slot: Slot, *, force: bool = False, trigger: str = "manual") -> StepResult:
        """Start signing with the next authority of ``slot``.

        Raises:
            NothingPreparedError: no next authority was prepared.
            PropagationPendingError: the next authority is younger than its propagation
                delay (unless ``force``).
            RotationBusyError: another process is rotating.
        """
        with self._lock.held():
            slots = self.slots()
            now = self._clock.now()
            if slot is Slot.ROOT:
                return self._activate_root(slots, now, force, trigger)
            return self._activate_intermediate(slots, now, force, trigger)

    def _check_usable(self, record: AuthorityRecord, now: datetime) -> None:
        if not record.not_before <= now < record.not_after:
            raise RotationError(
                f"prepared {record.kind} {record.id} is not valid now (valid "
                f"{_when(record.not_before)} to {_when(record.not_after)}); roll it back and "
                "prepare a new one"
            )

    def _activate_intermediate(
        self, slots: AuthoritySlots, now: datetime, force: bool, trigger: str
    ) -> StepResult:
        nxt = slots.next_intermediate
        if nxt is None:
            hint = " (a root is prepared: use --root)" if slots.next_root is not None else ""
            raise NothingPreparedError(
                "no intermediate is prepared under the current root, so there is nothing to "
                f"activate{hint}; run 'citadel ca rotate prepare --intermediate' first"
            )
        self._check_usable(nxt, now)
        ready_at = nxt.created_at + self.policy.intermediate_propagation_delay
        if now < ready_at and not force:
            raise PropagationPendingError(
                f"intermediate {nxt.id} was prepared at {_when(nxt.created_at)}; agents may "
                f"not all have its CRL until {_when(ready_at)}. Activate then, or use --force: "
                "peers that check CRLs would refuse its leaves until their agent fetches it"
            )
        self._repo.set_authority_state(nxt.id, "active", _activation_time(slots, now))
        self._audit(
            "activate",
            nxt,
            {
                "slot": "intermediate",
                "trigger": trigger,
                "forced": force and now < ready_at,
                **_describe(nxt),
                "previous": slots.signer.id,
            },
        )
        return StepResult(
            action="activate",
            slot=Slot.INTERMEDIATE,
            authority_ids=(nxt.id,),
            message=(
                f"intermediate {nxt.id} signs now; {slots.signer.id} is draining until its "
                "leaves expire ('citadel ca rotate retire --intermediate')"
            ),
        )

    def _activate_root(
        self, slots: AuthoritySlots, now: datetime, force: bool, trigger: str
    ) -> StepResult:
        root, intermediate = slots.next_root, slots.next_root_intermediate
        if root is None:
            raise NothingPreparedError(
                "no root is prepared, so there is nothing to activate; run "
                "'citadel ca rotate prepare --root' first"
            )
        if intermediate is None:
            raise NothingPreparedError(
                f"prepared root {root.id} has no prepared intermediate to sign with; roll it "
                "back and prepare again"
            )
        self._check_usable(root, now)
        self._check_usable(intermediate, now)
        ready_at = root.created_at + self.policy.propagation_delay
        if now < ready_at and not force:
            raise PropagationPendingError(
                f"root {root.id} was added to the trust bundle at {_when(root.created_at)}; "
                f"agents may not all have it until {_when(ready_at)}. Activate then, or use "
                "--force: workloads whose peers still hold the old bundle would then fail "
                "mTLS with them"
            )
        at = _activation_time(slots, now)
        self._repo.set_authority_state(root.id, "active", at)
        self._repo.set_authority_state(intermediate.id, "active", at)
        self._audit(
            "activate",
            root,
            {
                "slot": "root",
                "trigger": trigger,
                "forced": force and now < ready_at,
                **_describe(root),
                "intermediate": _describe(intermediate),
                "previous_root": slots.root.id,
                "previous_intermediate": slots.signer.id,
            },
        )
        return StepResult(
            action="activate",
            slot=Slot.ROOT,
            authority_ids=(root.id, intermediate.id),
            message=(
                f"root {root.id} and intermediate {intermediate.id} sign now; root "
                f"{slots.root.id} stays in the bundle until its leaves expire "
                "('citadel ca rotate retire --root')"
            ),
        )

    # ------------------------------------------------------------------- retire

    def retire(self, slot: Slot, *, force: bool = False, trigger: str = "manual") -> StepResult:
        """Drop the draining authorities of ``slot`` once no valid leaf of theirs remains.

        Raises:
            NothingToRetireError: nothing is draining.
            RetireRefusedError: unexpired leaves remain (unless ``force``).
            RotationBusyError: another process is rotating.
        """
        with self._lock.held():
            slots = self.slots()
            now = self._clock.now()
            if slot is Slot.ROOT:
                return self._retire_roots(slots, now, force, trigger)
            return self._retire_intermediates(slots, now, force, trigger)

    def remaining_leaves(
        self, intermediates: Sequence[AuthorityRecord], now: datetime
    ) -> LeafCount:
        """Unexpired, unrevoked leaves signed by any of ``intermediates``."""
        signers = [r for r in intermediates if r.state != "revoked"]
        if not signers:
            return LeafCount(0, None, ())
        return self._census.unexpired([r.fingerprint_sha256 for r in signers], now=now)

    def _refuse_or_note(
        self, what: str, count: LeafCount, force: bool, consequence: str
    ) -> dict[str, Any]:
        if count.none_remain:
            return {"remaining_leaves": 0}
        last = _when(count.last_not_after) if count.last_not_after else "-"
        if not force:
            raise RetireRefusedError(
                f"{count.count} unexpired leaf certificate(s) signed by {what} remain (the last "
                f"expires {last}; e.g. serial {count.sample_serials[-1]}); retire after that, "
                f"or use --force: {consequence}"
            )
        _log.warning("retiring %s with %d unexpired leaves (forced)", what, count.count)
        return {"remaining_leaves": count.count, "forced": True, "last_leaf_expiry": last}

    def _retire_intermediates(
        self, slots: AuthoritySlots, now: datetime, force: bool, trigger: str
    ) -> StepResult:
        targets = slots.intermediates_draining_under(slots.root)
        if not targets:
            raise NothingToRetireError(
                "no intermediate is draining under the current root, so there is nothing to retire"
            )
        names = ", ".join(t.id for t in targets)
        note = self._refuse_or_note(
            f"intermediate {names}",
            self.remaining_leaves(targets, now),
            force,
            "no CRL is published for a retired intermediate any more, so peers that check "
            "CRLs for every certificate in the chain will refuse those leaves",
        )
        for target in targets:
            self._repo.set_authority_state(target.id, "retired", now)
            self._audit(
                "retire",
                target,
                {"slot": "intermediate", "trigger": trigger, **_describe(target), **note},
            )
        return StepResult(
            action="retire",
            slot=Slot.INTERMEDIATE,
            authority_ids=tuple(t.id for t in targets),
            message=f"retired intermediate {names}",
        )

    def _retire_roots(
        self, slots: AuthoritySlots, now: datetime, force: bool, trigger: str
    ) -> StepResult:
        targets = slots.draining_roots
        if not targets:
            raise NothingToRetireError(
                "no root is draining (only the current root is in the bundle besides any "
                "prepared one), so there is nothing to retire"
            )
        below = {t.id: [d for d in slots.descendants(t) if is_own(d)] for t in targets}
        names = ", ".join(t.id for t in targets)
        note = self._refuse_or_note(
            f"the intermediates under root {names}",
            self.remaining_leaves([d for ds in below.values() for d in ds], now),
            force,
            "workloads holding those leaves will fail mTLS with every peer that has "
            "refreshed its trust bundle, until they renew",
        )
        changed: list[str] = []
        for target in targets:
            for record in slots.descendants(target):
                if record.state in ("active", "prepared"):
                    self._repo.set_authority_state(record.id, "retired", now)
                    changed.append(record.id)
            self._repo.set_authority_state(target.id, "retired", now)
            changed.append(target.id)
            self._audit(
                "retire",
                target,
                {
                    "slot": "root",
                    "trigger": trigger,
                    **_describe(target),
                    "intermediates": [d.id for d in slots.descendants(target)],
                    **note,
                },
            )
        return StepResult(
            action="retire",
            slot=Slot.ROOT,
            authority_ids=tuple(changed),
            message=f"retired root {names}; it is no longer in the trust bundle",
        )

    # ----------------------------------------------------------------- rollback

    def rollback(self, slot: Slot, *, trigger: str = "manual") -> StepResult:
        """Return to the previous authority of ``slot`` while it is not retired, or cancel a
        prepared one that was never activated.

        Raises:
            NothingToRollBackError: there is no previous (or prepared) authority.
            RotationBusyError: another process is rotating.
        """
        with self._lock.held():
            slots = self.slots()
            now = self._clock.now()
            if slot is Slot.ROOT:
                return self._rollback_root(slots, now, trigger)
            return self._rollback_intermediate(slots, now, trigger)

    def _retire_all(self, records: Iterable[AuthorityRecord], now: datetime) -> tuple[str, ...]:
        changed = []
        for record in records:
            self._repo.set_authority_state(record.id, "retired", now)
            changed.append(record.id)
        return tuple(changed)

    def _rollback_intermediate(
        self, slots: AuthoritySlots, now: datetime, trigger: str
    ) -> StepResult:
        previous = [r for r in slots.intermediates_draining_under(slots.root) if r.not_after > now]
        if previous:
            back_to = max(previous, key=lambda r: (r.activated_at or r.created_at, r.created_at))
            changed = self._retire_all([slots.signer], now)
            message = f"intermediate {back_to.id} signs again; {slots.signer.id} is retired"
        elif slots.next_intermediate is not None:
            back_to = slots.signer
            changed = self._retire_all([slots.next_intermediate], now)
            message = f"cancelled prepared intermediate {slots.next_intermediate.id}"
        else:
            raise NothingToRollBackError(
                "nothing to roll back: no earlier intermediate is still active under the "
                "current root (a retired one cannot come back) and none is prepared"
            )
        self._audit(
            "rollback",
            slots.signer,
            {
                "slot": "intermediate",
                "trigger": trigger,
                "retired": list(changed),
                "signer": back_to.id,
            },
        )
        return StepResult(
            action="rollback", slot=Slot.INTERMEDIATE, authority_ids=changed, message=message
        )

    def _rollback_root(self, slots: AuthoritySlots, now: datetime, trigger: str) -> StepResult:
        draining = {r.id for r in slots.draining_roots if r.not_after > now}
        previous = [
            r
            for r in slots.draining_intermediates
            if slots.root_of(r).id in draining and r.not_after > now
        ]
        if previous:
            current = [slots.signer, *slots.intermediates_draining_under(slots.root)]
            changed = self._retire_all(current, now)
            back_to = max(previous, key=lambda r: (r.activated_at or r.created_at, r.created_at))
            message = (
                f"root {slots.root_of(back_to).id} (intermediate {back_to.id}) signs again; "
                f"root {slots.root.id} stays in the bundle until its leaves expire"
            )
        elif slots.next_root is not None:
            cancelled = [slots.next_root_intermediate, slots.next_root]
            changed = self._retire_all([r for r in cancelled if r is not None], now)
            message = f"cancelled prepared root {slots.next_root.id}; it left the trust bundle"
        else:
            raise NothingToRollBackError(
                "nothing to roll back: no earlier root still has an active intermediate (a "
                "retired one cannot come back) and no root is prepared"
            )
        self._audit(
            "rollback",
            slots.root,
            {"slot": "root", "trigger": trigger, "retired": list(changed)},
        )
        return StepResult(action="rollback", slot=Slot.ROOT, authority_ids=changed, message=message)

    # -------------------------------------------------------------------- audit

    def _audit(self, step: str, record: AuthorityRecord, payload: dict[str, Any]) -> None:
        self._repo.append_audit(AUDIT_PREFIX + step, record.id, payload, self._clock.now())
        _log.info("rotation %s: %s (%s)", step, record.id, payload.get("slot"))
