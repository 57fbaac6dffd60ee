"""How rotation behaves: delays, lock lease and check intervals."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

__all__ = ["RotationPolicy"]


@dataclass(frozen=True, kw_only=True)
class RotationPolicy:
    """Settings of manual and automatic rotation.

    Attributes:
        propagation_delay: how long after a new root is prepared (and so added to the trust
            bundle) it may start signing; gives agents time to fetch the new bundle.
        intermediate_propagation_delay: how long after a new intermediate is prepared it may
            start signing. The bundle does not change, but its CRL is published from the
            moment it is prepared, and peers that check CRLs refuse leaves of an intermediate
            whose CRL they do not have yet; this gives agents time to fetch it.
        lock_ttl: the lease of the ``ca-rotation`` store lock held during one step.
        automatic: run the schedule at all (``citadel serve``).
        check_interval: how often the schedule looks at the thresholds.
        retire_check_interval: how often the schedule counts the leaves that still hold a
            draining authority in place (a database scan).
    """

    propagation_delay: timedelta = timedelta(hours=24)
    intermediate_propagation_delay: timedelta = timedelta(minutes=10)
    lock_ttl: timedelta = timedelta(minutes=2)
    automatic: bool = True
    check_interval: timedelta = timedelta(seconds=10)
    retire_check_interval: timedelta = timedelta(minutes=10)

    def __post_init__(self) -> None:
        for name in (
            "propagation_delay",
            "intermediate_propagation_delay",
            "lock_ttl",
            "check_interval",
            "retire_check_interval",
        ):
            if not isinstance(getattr(self, name), timedelta):
                raise TypeError(f"{name} must be a timedelta")
        if min(self.propagation_delay, self.intermediate_propagation_delay) < timedelta(0):
            raise ValueError("propagation delays must not be negative")
        for name in ("lock_ttl", "check_interval", "retire_check_interval"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")
