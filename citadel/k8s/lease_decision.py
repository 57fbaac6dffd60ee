"""May I hold the Lease? A pure function of (the Lease as read, my identity, now).

The Lease record is the ``spec`` of a ``coordination.k8s.io/v1`` Lease plus its
``resourceVersion``. A Lease held by someone else is respected until ``renewTime +
leaseDurationSeconds``; after that (or when it names no holder) it may be taken over. Clocks of
the replicas are assumed to agree to well within ``renew_deadline`` (NTP), as with every
Kubernetes Lease-based election.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

__all__ = [
    "LeaseAction",
    "LeaseDecision",
    "LeaseRecord",
    "decide_lease",
    "next_lease_record",
]


@dataclass(frozen=True, kw_only=True)
class LeaseRecord:
    holder: str | None
    lease_duration: timedelta | None
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    transitions: int = 0
    resource_version: str | None = None

    def expires_at(self) -> datetime | None:
        if self.renew_time is None or self.lease_duration is None:
            return None
        return self.renew_time + self.lease_duration


class LeaseAction(StrEnum):
    CREATE = "create"  # no Lease object yet
    RENEW = "renew"  # I hold it: extend it
    ACQUIRE = "acquire"  # free, released or expired: take it over
    WAIT = "wait"  # someone else holds a valid lease


@dataclass(frozen=True)
class LeaseDecision:
    action: LeaseAction
    holder: str | None = None  # the current holder when waiting
    valid_until: datetime | None = None  # when the other holder's lease runs out

    @property
    def may_write(self) -> bool:
        return self.action is not LeaseAction.WAIT


def decide_lease(record: LeaseRecord | None, me: str, now: datetime) -> LeaseDecision:
    """What to do with the Lease at ``now``.

    Args:
        record: the Lease as read, or None when it does not exist.
        me: my holder identity.
        now: aware UTC time.
    """
    if not me:
        raise ValueError("holder identity must not be empty")
    if record is None:
        return LeaseDecision(LeaseAction.CREATE)
    if record.holder == me:
        return LeaseDecision(LeaseAction.RENEW)
    if not record.holder:
        return LeaseDecision(LeaseAction.ACQUIRE)
    expires_at = record.expires_at()
    if expires_at is None or (record.lease_duration or timedelta(0)) <= timedelta(0):
        # Held, but without a usable renewTime/duration: nobody can prove it is alive.
        return LeaseDecision(LeaseAction.ACQUIRE)
    if now >= expires_at:
        return LeaseDecision(LeaseAction.ACQUIRE)
    return LeaseDecision(LeaseAction.WAIT, holder=record.holder, valid_until=expires_at)


def next_lease_record(
    record: LeaseRecord | None, me: str, now: datetime, duration: timedelta
) -> LeaseRecord:
    """The record to write when ``decide_lease`` allowed a write.

    ``acquireTime`` is kept on a renewal and set on a takeover; ``leaseTransitions`` counts
    changes of holder; the ``resourceVersion`` is the one read (optimistic concurrency).
    """
    if duration < timedelta(seconds=1):
        raise ValueError("lease duration must be at least one second")
    if record is None:
        return LeaseRecord(
            holder=me, lease_duration=duration, acquire_time=now, renew_time=now, transitions=0
        )
    renewing = record.holder == me
    changed_hands = not renewing and bool(record.holder)
    return LeaseRecord(
        holder=me,
        lease_duration=duration,
        acquire_time=record.acquire_time if renewing and record.acquire_time else now,
        renew_time=now,
        transitions=record.transitions + (1 if changed_hands else 0),
        resource_version=record.resource_version,
    )
