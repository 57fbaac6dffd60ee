"""The one secret cache shared by every endpoint (SDS now, the Workload API later).

Producers (the certificate rotator, file sources) ``publish``; consumers ``subscribe`` to
a resource name and are called back with that name whenever its secret changes, or
``subscribe_all`` to hear about every name (what the Workload API's source needs). Callbacks
run on the publisher's thread, outside the cache lock; an asyncio consumer hands the
notification to its loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from citadel.identity.clock import Clock
from node_agent.secrets import Secret

__all__ = ["CacheEntry", "SecretCache", "Subscription"]

_log = logging.getLogger(__name__)

Listener = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class CacheEntry:
    secret: Secret
    revision: int
    published_at: datetime


class Subscription:
    """A registered listener; ``close()`` unregisters it (idempotent).

    ``name`` is None for a subscription to every name.
    """

    def __init__(self, cache: SecretCache, name: str | None, listener: Listener) -> None:
        self._cache = cache
        self.name = name
        self.listener = listener
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cache._unsubscribe(self)


class SecretCache:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._entries: dict[str, CacheEntry] = {}
        self._listeners: dict[str | None, list[Subscription]] = {}
        self._revision = itertools.count(1)
        self._lock = threading.Lock()

    def get(self, name: str) -> CacheEntry | None:
        with self._lock:
            return self._entries.get(name)

    def entries(self) -> list[CacheEntry]:
        with self._lock:
            return sorted(self._entries.values(), key=lambda e: e.secret.name)

    def publish(self, secret: Secret) -> CacheEntry | None:
        """Store ``secret`` under its name and notify subscribers.

        Returns the new entry, or None when the same content is already cached (nothing
        changes, nobody is notified).
        """
        with self._lock:
            current = self._entries.get(secret.name)
            if current is not None and current.secret == secret:
                return None
            entry = CacheEntry(secret, next(self._revision), self._clock.now())
            self._entries[secret.name] = entry
            listeners = self._listeners_of(secret.name)
        self._notify(secret.name, listeners)
        return entry

    def remove(self, name: str) -> None:
        with self._lock:
            if self._entries.pop(name, None) is None:
                return
            listeners = self._listeners_of(name)
        self._notify(name, listeners)

    def _listeners_of(self, name: str) -> list[Subscription]:
        return [*self._listeners.get(name, ()), *self._listeners.get(None, ())]

    def subscribe_all(self, listener: Listener) -> Subscription:
        """Call ``listener(name)`` after any change to any name."""
        subscription = Subscription(self, None, listener)
        with self._lock:
            self._listeners.setdefault(None, []).append(subscription)
        return subscription

    def subscribe(self, name: str, listener: Listener) -> Subscription:
        subscription = Subscription(self, name, listener)
        with self._lock:
            self._listeners.setdefault(name, []).append(subscription)
        return subscription

    def subscriber_count(self, name: str | None = None) -> int:
        with self._lock:
            if name is not None:
                return len(self._listeners.get(name, ()))
            return sum(len(v) for v in self._listeners.values())

    def _unsubscribe(self, subscription: Subscription) -> None:
        with self._lock:
            listeners = self._listeners.get(subscription.name)
            if listeners is None:
                return
            try:
                listeners.remove(subscription)
            except ValueError:
                return
            if not listeners:
                del self._listeners[subscription.name]

    @staticmethod
    def _notify(name: str, listeners: list[Subscription]) -> None:
        for subscription in listeners:
            try:
                subscription.listener(name)
            except Exception:  # one broken consumer must not starve the others
                _log.exception("secret listener for %s failed", name)
