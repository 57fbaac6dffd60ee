"""Keeping the agent's entries and trust bundle current: a periodic, incremental sync.

Every ``interval`` the loop fetches the bundle (X.509 roots, JWT keys, CRLs) and then asks
for the entry changes since the revision it holds (``SyncEntries(since_revision)``): only
changed entries and tombstones travel, not the whole set. A failure keeps what the agent
has, and the next attempt follows the agent's capped exponential backoff
(:func:`node_agent.rotation.backoff_delay`).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from cryptography import x509

from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import Clock
from citadel.identity.spiffe_id import TrustDomain
from node_agent.entries.entry_set import EntryDiff, EntrySet
from node_agent.entries.records import BundleUpdate, EntryUpdate
from node_agent.errors import AgentError
from node_agent.rotation import BackoffPolicy, backoff_delay
from node_agent.scheduler import Scheduler

__all__ = ["BundleHolder", "EntryApi", "EntrySyncLoop"]

_log = logging.getLogger(__name__)

ChangeListener = Callable[[EntryDiff, bool], None]


class EntryApi(Protocol):
    def sync_entries(self, since_revision: int) -> EntryUpdate: ...

    def get_bundle(self, trust_domain: TrustDomain) -> BundleUpdate: ...


class BundleHolder:
    """The bundle and CRLs of the agent's trust domain, as last served by the CA.

    Until the first answer, :meth:`roots` falls back to the configured roots.
    """

    def __init__(self, configured_roots: Callable[[], Sequence[x509.Certificate]]) -> None:
        self._configured = configured_roots
        self._lock = threading.Lock()
        self._update: BundleUpdate | None = None

    def update(self, update: BundleUpdate) -> bool:
        """Keep ``update``; True when it differs from what was held."""
        with self._lock:
            current = self._update
            changed = current is None or (
                current.bundle.to_spiffe_dict() != update.bundle.to_spiffe_dict()
                or current.crls != update.crls
            )
            self._update = update
        return changed

    def bundle(self) -> TrustBundle | None:
        update = self._update
        return update.bundle if update is not None else None

    def crls(self) -> tuple[bytes, ...]:
        update = self._update
        return update.crls if update is not None else ()

    def roots(self) -> tuple[x509.Certificate, ...]:
        """The roots to verify SVIDs with: the CA's bundle, else the configured roots."""
        bundle = self.bundle()
        if bundle is not None and bundle.x509_authorities:
            return bundle.x509_authorities
        return tuple(self._configured())


class EntrySyncLoop:
    """Runs on the agent's scheduler (task ``sync-entries``)."""

    TASK = "sync-entries"

    def __init__(
        self,
        *,
        api: EntryApi,
        entries: EntrySet,
        bundles: BundleHolder,
        trust_domain: TrustDomain,
        scheduler: Scheduler,
        clock: Clock,
        interval: timedelta = timedelta(seconds=5),
        backoff: BackoffPolicy | None = None,
        rng: random.Random | None = None,
        on_change: ChangeListener | None = None,
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("sync interval must be positive")
        self._api = api
        self._entries = entries
        self._bundles = bundles
        self._trust_domain = trust_domain
        self._scheduler = scheduler
        self._clock = clock
        self.interval = interval
        self._backoff = backoff if backoff is not None else BackoffPolicy()
        self._rng = rng if rng is not None else random.SystemRandom()
        self._on_change = on_change
        self._failures = 0
        self._synced_once = False
        self._lock = threading.Lock()
        self.last_error: AgentError | None = None
        self.last_sync: datetime | None = None
        self.next_sync: datetime | None = None

    def start(self) -> None:
        self.request_sync()

    def stop(self) -> None:
        self._scheduler.cancel(self.TASK)

    def request_sync(self) -> None:
        """Sync as soon as the scheduler can (e.g. once the agent has its certificate)."""
        self._schedule(self._clock.now())

    def _schedule(self, at: datetime) -> None:
        self.next_sync = at
        self._scheduler.schedule(self.TASK, at, self.run)

    def run(self) -> bool:
        """One sync: bundle first (the roots new SVIDs are checked with), then entries."""
        with self._lock:
            now = self._clock.now()
            try:
                bundle_changed = self._bundles.update(self._api.get_bundle(self._trust_domain))
                update = self._api.sync_entries(self._entries.revision)
            except AgentError as exc:
                self._failed(exc, now)
                return False
            diff = self._entries.apply(update)
            first = not self._synced_once
            self._synced_once = True
            self._failures = 0
            self.last_error = None
            self.last_sync = now
            self._schedule(now + self.interval)
        if diff or update.full:
            _log.info(
                "entries at revision %d: %d added or changed, %d removed%s",
                update.revision,
                len(diff.upserted),
                len(diff.removed),
                " (full sync)" if update.full else "",
            )
        if self._on_change is not None and (diff or bundle_changed or first):
            self._on_change(diff, bundle_changed)
        return True

    def _failed(self, exc: AgentError, now: datetime) -> None:
        delay = backoff_delay(self._failures, self._backoff, self._rng.uniform(-1.0, 1.0))
        self._failures += 1
        self.last_error = exc
        self._schedule(now + delay)
        _log.warning(
            "entry sync failed (%s: %s); keeping revision %d, retry %d in %.1fs",
            exc.kind,
            exc.message,
            self._entries.revision,
            self._failures,
            delay.total_seconds(),
        )
