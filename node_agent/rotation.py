"""Pure rotation and retry maths. No clock, no randomness: callers pass both in.

``u`` arguments are uniform draws in [-1, 1] supplied by the caller (an injected
``random.Random`` in production, fixed values in tests), so every result is reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "BackoffPolicy",
    "RotationPolicy",
    "backoff_delay",
    "retry_at",
    "rotate_at",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class RotationPolicy:
    """When to renew: ``ratio`` of the lifetime before expiry, +/- ``jitter_fraction``.

    ``ratio`` 0.5 renews half-way through the certificate's life; ``jitter_fraction``
    0.01 moves that instant by up to 1% of the lifetime either way.
    """

    ratio: float = 0.5
    jitter_fraction: float = 0.01

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio < 1.0:
            raise ValueError("rotation ratio must be between 0 and 1 (exclusive)")
        if not 0.0 <= self.jitter_fraction < 0.5:
            raise ValueError("rotation jitter must be in [0, 0.5)")


@dataclass(frozen=True, kw_only=True, slots=True)
class BackoffPolicy:
    """Exponential backoff for a CA that is unreachable or refuses: initial x multiplier^n."""

    initial: timedelta = timedelta(seconds=1)
    maximum: timedelta = timedelta(seconds=60)
    multiplier: float = 2.0
    jitter_fraction: float = 0.2

    def __post_init__(self) -> None:
        if self.initial <= timedelta(0):
            raise ValueError("backoff initial delay must be positive")
        if self.maximum < self.initial:
            raise ValueError("backoff maximum must be at least the initial delay")
        if self.multiplier < 1.0:
            raise ValueError("backoff multiplier must be >= 1")
        if not 0.0 <= self.jitter_fraction < 1.0:
            raise ValueError("backoff jitter must be in [0, 1)")


def _check_draw(u: float) -> None:
    if not -1.0 <= u <= 1.0:
        raise ValueError("random draw must be in [-1, 1]")


def rotate_at(
    not_before: datetime, not_after: datetime, ratio: float, jitter_fraction: float, u: float
) -> datetime:
    """The instant to renew a certificate valid from ``not_before`` to ``not_after``.

    ``not_after - ratio x lifetime + u x jitter_fraction x lifetime``, clamped into the
    validity window. A certificate with no lifetime is renewed at once (``not_before``).
    """
    _check_draw(u)
    if not 0.0 < ratio < 1.0:
        raise ValueError("rotation ratio must be between 0 and 1 (exclusive)")
    lifetime = not_after - not_before
    if lifetime <= timedelta(0):
        return not_before
    at = not_after - lifetime * ratio + lifetime * (jitter_fraction * u)
    return min(max(at, not_before), not_after)


def backoff_delay(attempt: int, policy: BackoffPolicy, u: float) -> timedelta:
    """The wait before retry number ``attempt`` (0 = first retry), jittered and capped."""
    _check_draw(u)
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    # Cap the exponent first so large attempt counts cannot overflow.
    base_seconds = policy.initial.total_seconds() * policy.multiplier ** min(attempt, 64)
    capped = min(base_seconds, policy.maximum.total_seconds())
    jittered = capped * (1.0 + policy.jitter_fraction * u)
    return timedelta(seconds=min(jittered, policy.maximum.total_seconds()))


def retry_at(now: datetime, delay: timedelta, not_after: datetime | None) -> datetime:
    """When to retry a failed renewal: after ``delay``, but no later than expiry.

    Retrying at expiry (rather than after it) gives the last chance to renew before the
    cached certificate becomes useless.
    """
    at = now + delay
    if not_after is not None and now < not_after < at:
        return not_after
    return at
