"""When to prepare and activate the next authority: pure functions of (issued_at, not_after, now).

The thresholds follow SPIRE's current/next slot model:

* prepare the next authority once half of the current one's lifetime has passed, but never
  earlier than 30 days before it expires;
* activate it once only a sixth of the lifetime is left, but never earlier than 7 days
  before expiry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "ACTIVATION_CAP",
    "PREPARATION_CAP",
    "RotationDue",
    "activation_threshold",
    "preparation_threshold",
    "rotation_due",
]

PREPARATION_CAP = timedelta(days=30)
ACTIVATION_CAP = timedelta(days=7)


def _lifetime(issued_at: datetime, not_after: datetime) -> timedelta:
    if not_after <= issued_at:
        raise ValueError("not_after must be later than issued_at")
    return not_after - issued_at


def preparation_threshold(issued_at: datetime, not_after: datetime) -> datetime:
    """The moment from which the next authority should exist (prepared, not yet signing)."""
    return not_after - min(_lifetime(issued_at, not_after) / 2, PREPARATION_CAP)


def activation_threshold(issued_at: datetime, not_after: datetime) -> datetime:
    """The moment from which the next authority should sign instead of the current one."""
    return not_after - min(_lifetime(issued_at, not_after) / 6, ACTIVATION_CAP)


@dataclass(frozen=True, slots=True)
class RotationDue:
    prepare: bool
    activate: bool


def rotation_due(issued_at: datetime, not_after: datetime, now: datetime) -> RotationDue:
    """Which rotation steps are due for the current authority at ``now``."""
    return RotationDue(
        prepare=now >= preparation_threshold(issued_at, not_after),
        activate=now >= activation_threshold(issued_at, not_after),
    )
