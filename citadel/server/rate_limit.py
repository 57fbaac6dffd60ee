"""Token buckets: a global CSR limit, one bucket per identity, and a client-side throttle.

The buckets read a monotonic clock that is injected (``time.monotonic`` by default), so the
arithmetic is tested without sleeping. Limits are per process: with several workers each
worker holds its own buckets (see :mod:`citadel.server.supervisor` for how the global rate
is split between them).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from citadel.server.errors import RateLimitedError

__all__ = [
    "BlockingThrottle",
    "CsrRateLimiter",
    "KeyedTokenBuckets",
    "RateLimit",
    "TokenBucket",
]

Monotonic = Callable[[], float]


@dataclass(frozen=True, kw_only=True, slots=True)
class RateLimit:
    """``rate`` tokens per second refill a bucket that holds at most ``burst`` tokens."""

    rate: float
    burst: int

    def __post_init__(self) -> None:
        if not math.isfinite(self.rate) or self.rate <= 0:
            raise ValueError("rate must be a positive number of requests per second")
        if self.burst < 1:
            raise ValueError("burst must be at least 1")

    def divided(self, parts: int) -> RateLimit:
        """This limit shared by ``parts`` independent processes."""
        if parts < 1:
            raise ValueError("parts must be at least 1")
        return RateLimit(rate=self.rate / parts, burst=max(1, self.burst // parts))


class TokenBucket:
    """A classic token bucket. Thread-safe."""

    def __init__(self, limit: RateLimit, *, monotonic: Monotonic = time.monotonic) -> None:
        self._limit = limit
        self._monotonic = monotonic
        self._tokens = float(limit.burst)
        self._updated = monotonic()
        self._lock = threading.Lock()

    def try_take(self) -> float:
        """Take one token. Return 0.0 on success, else the seconds until one is available."""
        with self._lock:
            now = self._monotonic()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(float(self._limit.burst), self._tokens + elapsed * self._limit.rate)
            self._updated = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._limit.rate


class KeyedTokenBuckets:
    """One bucket per key, the least recently used keys forgotten beyond ``max_keys``.

    A forgotten key starts again with a full bucket, which is the generous direction.
    """

    def __init__(
        self, limit: RateLimit, *, max_keys: int = 10_000, monotonic: Monotonic = time.monotonic
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self._limit = limit
        self._max_keys = max_keys
        self._monotonic = monotonic
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    def try_take(self, key: str) -> float:
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = TokenBucket(self._limit, monotonic=self._monotonic)
                self._buckets[key] = bucket
                if len(self._buckets) > self._max_keys:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(key)
        return bucket.try_take()

    def __len__(self) -> int:
        with self._lock:
            return len(self._buckets)


def _retry_after(wait_seconds: float) -> timedelta:
    return timedelta(seconds=max(1, math.ceil(wait_seconds)))


class CsrRateLimiter:
    """The CSR API's limits: one global bucket and one bucket per issued identity.

    ``None`` disables a limit.
    """

    def __init__(
        self,
        *,
        global_limit: RateLimit | None,
        identity_limit: RateLimit | None,
        max_identities: int = 10_000,
        monotonic: Monotonic = time.monotonic,
    ) -> None:
        self._global = TokenBucket(global_limit, monotonic=monotonic) if global_limit else None
        self._per_identity = (
            KeyedTokenBuckets(identity_limit, max_keys=max_identities, monotonic=monotonic)
            if identity_limit
            else None
        )

    def check_global(self) -> None:
        """Raises: RateLimitedError: the server-wide rate is exceeded."""
        if self._global is None:
            return
        wait = self._global.try_take()
        if wait > 0:
            raise RateLimitedError(
                "server-wide CSR rate exceeded", retry_after=_retry_after(wait), scope="global"
            )

    def check_identity(self, identity: str) -> None:
        """Raises: RateLimitedError: this identity asked too often."""
        if self._per_identity is None:
            return
        wait = self._per_identity.try_take(identity)
        if wait > 0:
            raise RateLimitedError(
                f"CSR rate for {identity} exceeded",
                retry_after=_retry_after(wait),
                scope="identity",
            )


class BlockingThrottle:
    """A client-side throttle in front of an API (like client-go's QPS/burst limiter).

    :meth:`acquire` waits for a token up to ``max_wait`` and reports whether the call may go
    ahead; ``on_throttled`` is called whenever a caller had to wait or was refused.
    """

    def __init__(
        self,
        limit: RateLimit,
        *,
        max_wait: timedelta = timedelta(seconds=1),
        on_throttled: Callable[[bool], None] | None = None,
        monotonic: Monotonic = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._bucket = TokenBucket(limit, monotonic=monotonic)
        self._max_wait = max_wait.total_seconds()
        self._on_throttled = on_throttled
        self._monotonic = monotonic
        self._sleep = sleep

    def acquire(self) -> bool:
        deadline = self._monotonic() + self._max_wait
        waited = False
        while True:
            wait = self._bucket.try_take()
            if wait == 0.0:
                if waited and self._on_throttled is not None:
                    self._on_throttled(True)
                return True
            remaining = deadline - self._monotonic()
            if wait > remaining:
                if self._on_throttled is not None:
                    self._on_throttled(False)
                return False
            waited = True
            self._sleep(wait)
