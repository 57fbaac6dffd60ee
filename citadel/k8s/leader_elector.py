"""The leader-election interface shared by the Kubernetes Lease and the database-lock electors."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

__all__ = ["LeaderElector", "LeadershipObservation"]


@dataclass(frozen=True)
class LeadershipObservation:
    """The result of one election round.

    Attributes:
        is_leader: I hold the leadership now.
        holder: the holder when known (me when leading; the other replica when the backend
            names it).
        expires_at: when leading, until when my claim runs; when following, when the other
            holder's claim runs out (if known).
    """

    is_leader: bool
    holder: str | None = None
    expires_at: datetime | None = None


class LeaderElector(Protocol):
    """One election backend. Each round is a single attempt: no sleeping, no threads.

    ``try_acquire_or_renew`` raises the backend's typed errors (API server or database
    unavailable); the caller (:class:`~citadel.k8s.leader_election_loop.LeaderElectionLoop`)
    decides what an error means for a current leader.
    """

    @property
    def identity(self) -> str: ...

    @property
    def lease_duration(self) -> timedelta: ...

    def try_acquire_or_renew(self) -> LeadershipObservation: ...

    def release(self) -> None: ...
