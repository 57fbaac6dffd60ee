"""Automatic rotation: run whichever step the thresholds say is due, as a singleton job.

One :meth:`RotationJob.run_once` holds the ``ca-rotation`` store lock for its whole run, so
two replicas never rotate at once (the one without the lock skips the run). It:

1. prepares the next root when :func:`~citadel.ca.rotation_schedule.rotation_due` says so
   for the current root, and activates it once it is due *and* the propagation delay since
   its preparation has passed;
2. does the same for the signing intermediate under the current root (after the shorter
   intermediate delay, for its CRL to spread), also while a new root waits, so the signer
   never expires first;
3. every ``retire_check_interval``, retires draining authorities whose leaves have all
   expired (a refused retirement simply waits for the next check).

Authorities held by another CA (plug-in, upstream) are never rotated here.
"""

from __future__ import annotations

import logging
from datetime import datetime

from citadel.ca.authority_errors import (
    NothingToRetireError,
    RetireRefusedError,
    RotationBusyError,
)
from citadel.ca.authority_records import is_own
from citadel.ca.rotation.slots import AuthoritySlots, Slot
from citadel.ca.rotation.steps import AuthorityRotation, StepResult
from citadel.ca.rotation_schedule import rotation_due
from citadel.identity.clock import Clock

__all__ = ["RotationJob"]

_log = logging.getLogger(__name__)
TRIGGER = "schedule"


class RotationJob:
    def __init__(self, rotation: AuthorityRotation, clock: Clock) -> None:
        self._rotation = rotation
        self._clock = clock
        self._next_retire_check: datetime | None = None

    def run_once(self) -> list[StepResult]:
        """Run the due steps; returns what was done (empty when another replica holds the
        lock or nothing is due)."""
        try:
            with self._rotation.lock.held():
                return self._run()
        except RotationBusyError:
            _log.debug("rotation: another replica holds the lock; skipping this run")
            return []

    def _run(self) -> list[StepResult]:
        done: list[StepResult] = []
        done.extend(self._rotate_root())
        done.extend(self._rotate_intermediate())
        done.extend(self._retire_drained())
        for result in done:
            _log.info("scheduled rotation: %s", result.message)
        return done

    def _rotate_root(self) -> list[StepResult]:
        slots = self._rotation.slots()
        if not is_own(slots.root):
            return []
        now = self._clock.now()
        due = rotation_due(slots.root.not_before, slots.root.not_after, now)
        done: list[StepResult] = []
        if slots.next_root is None and due.prepare:
            done.append(self._rotation.prepare(Slot.ROOT, trigger=TRIGGER))
            slots = self._rotation.slots()
        if self._root_activation_due(slots, now, due.activate):
            done.append(self._rotation.activate(Slot.ROOT, trigger=TRIGGER))
        return done

    def _root_activation_due(self, slots: AuthoritySlots, now: datetime, due: bool) -> bool:
        if not due or slots.next_root is None or slots.next_root_intermediate is None:
            return False
        return now >= slots.next_root.created_at + self._rotation.policy.propagation_delay

    def _rotate_intermediate(self) -> list[StepResult]:
        slots = self._rotation.slots()
        if not is_own(slots.root):
            return []  # the root is another CA's: it rotates our intermediate, not us
        now = self._clock.now()
        due = rotation_due(slots.signer.not_before, slots.signer.not_after, now)
        done: list[StepResult] = []
        if slots.next_intermediate is None and due.prepare:
            done.append(self._rotation.prepare(Slot.INTERMEDIATE, trigger=TRIGGER))
            slots = self._rotation.slots()
        nxt = slots.next_intermediate
        delay = self._rotation.policy.intermediate_propagation_delay
        if nxt is not None and due.activate and now >= nxt.created_at + delay:
            done.append(self._rotation.activate(Slot.INTERMEDIATE, trigger=TRIGGER))
        return done

    def _retire_drained(self) -> list[StepResult]:
        now = self._clock.now()
        if self._next_retire_check is not None and now < self._next_retire_check:
            return []
        self._next_retire_check = now + self._rotation.policy.retire_check_interval
        slots = self._rotation.slots()
        done: list[StepResult] = []
        wanted = (
            (Slot.INTERMEDIATE, bool(slots.intermediates_draining_under(slots.root))),
            (Slot.ROOT, bool(slots.draining_roots)),
        )
        for slot, draining in wanted:
            if not draining:
                continue
            try:
                done.append(self._rotation.retire(slot, trigger=TRIGGER))
            except (RetireRefusedError, NothingToRetireError) as exc:
                _log.debug("rotation: %s not retired yet: %s", slot.value, exc.message)
        return done
