"""Capped exponential backoff with jitter, as a pure function plus a tiny stateful helper."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

__all__ = ["Backoff", "BackoffPolicy", "backoff_delay"]


@dataclass(frozen=True, kw_only=True)
class BackoffPolicy:
    """``base * factor**attempt`` capped at ``cap``, then spread by ``±jitter`` (a fraction)."""

    base: timedelta = timedelta(milliseconds=500)
    cap: timedelta = timedelta(seconds=30)
    factor: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base <= timedelta(0) or self.cap < self.base:
            raise ValueError("backoff needs 0 < base <= cap")
        if self.factor < 1.0:
            raise ValueError("backoff factor must be at least 1")
        if not 0.0 <= self.jitter < 1.0:
            raise ValueError("backoff jitter must be in [0, 1)")


def backoff_delay(policy: BackoffPolicy, attempt: int, unit_random: float) -> timedelta:
    """The delay before retry number ``attempt`` (0-based).

    ``unit_random`` is a number in [0, 1); 0.5 gives the un-jittered delay. The result never
    exceeds ``cap * (1 + jitter)`` and is never below ``base * (1 - jitter)``.
    """
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if not 0.0 <= unit_random <= 1.0:
        raise ValueError("unit_random must be in [0, 1]")
    base = policy.base.total_seconds()
    cap = policy.cap.total_seconds()
    # Stop growing once the cap is reached (also keeps float powers finite).
    exponent = min(attempt, 64)
    raw = min(cap, base * policy.factor**exponent)
    spread = 1.0 + policy.jitter * (2.0 * unit_random - 1.0)
    return timedelta(seconds=raw * spread)


class Backoff:
    """Counts consecutive failures; :meth:`next_delay` grows, :meth:`reset` after a success."""

    def __init__(
        self, policy: BackoffPolicy, *, unit_random: Callable[[], float] = random.random
    ) -> None:
        self._policy = policy
        self._random = unit_random
        self._attempt = 0

    @property
    def attempt(self) -> int:
        return self._attempt

    def next_delay(self) -> timedelta:
        delay = backoff_delay(self._policy, self._attempt, self._random())
        self._attempt += 1
        return delay

    def reset(self) -> None:
        self._attempt = 0
