"""Leader election on a database lock row, for replicas outside Kubernetes (PostgreSQL).

The store's ``try_acquire_lock(name, holder, ttl, now)`` takes the lock when it is free or
expired and renews it for its holder, in one conditional statement; ``release_lock`` gives it
back. This elector adapts that to :class:`~citadel.k8s.leader_elector.LeaderElector`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from citadel.identity.clock import Clock
from citadel.k8s.leader_elector import LeadershipObservation

__all__ = ["DatabaseLockElector", "LockRepository"]


class LockRepository(Protocol):
    """The two repository methods this elector needs (``citadel.store.Repository`` has them)."""

    def try_acquire_lock(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool: ...

    def release_lock(self, name: str, holder: str) -> bool: ...


class DatabaseLockElector:
    """Implements :class:`~citadel.k8s.leader_elector.LeaderElector` on a named lock row.

    Store errors (database unavailable) propagate from :meth:`try_acquire_or_renew`.
    """

    def __init__(
        self,
        repository: LockRepository,
        *,
        name: str,
        identity: str,
        clock: Clock,
        lease_duration: timedelta = timedelta(seconds=15),
    ) -> None:
        if not identity or not name:
            raise ValueError("lock name and holder identity must not be empty")
        if lease_duration < timedelta(seconds=1):
            raise ValueError("lease duration must be at least one second")
        self._repository = repository
        self._name = name
        self._identity = identity
        self._clock = clock
        self._duration = lease_duration

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def lease_duration(self) -> timedelta:
        return self._duration

    def try_acquire_or_renew(self) -> LeadershipObservation:
        now = self._clock.now()
        if self._repository.try_acquire_lock(self._name, self._identity, self._duration, now):
            return LeadershipObservation(True, self._identity, now + self._duration)
        return LeadershipObservation(False)

    def release(self) -> None:
        self._repository.release_lock(self._name, self._identity)
