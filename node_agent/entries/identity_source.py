"""The Workload API's :class:`~node_agent.workload_api.source.IdentitySource`, backed by the
agent's registration entries, their SVIDs and the CA's bundle.

``identities_for(selectors)`` is :func:`citadel.identity.registration.entries_for` over the
entries the agent holds (in entry-id order, so the first one is a stable default). JWT-SVIDs
are minted by the CA for the entry, and reused while more than half their life is left.
Subscribers hear about every entry change, SVID rotation and bundle or CRL update.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import Clock
from citadel.identity.registration import entries_for
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId
from node_agent.entries.entry_set import EntrySet
from node_agent.entries.records import IssuedJwt
from node_agent.entries.svid_manager import EntrySvidManager
from node_agent.entries.sync import BundleHolder
from node_agent.workload_api.errors import NoIdentityError
from node_agent.workload_api.source import IdentitySource, SourceSubscription, WorkloadIdentity

__all__ = ["EntryIdentitySource", "JwtApi"]

_log = logging.getLogger(__name__)
MAX_CACHED_JWTS = 1024


class JwtApi(Protocol):
    def new_jwt_svid(
        self, entry_id: str, spiffe_id: SpiffeId, audiences: Sequence[str]
    ) -> IssuedJwt: ...


@dataclass(frozen=True, slots=True)
class _CachedJwt:
    jwt: IssuedJwt
    fetched_at: datetime

    def fresh_at(self, now: datetime) -> bool:
        half_life = (self.jwt.expires_at - self.fetched_at) / 2
        return now < self.fetched_at + half_life


class _Subscription:
    def __init__(self, source: EntryIdentitySource, listener: Callable[[], None]) -> None:
        self._source = source
        self.listener = listener
        self._closed = False

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._source._drop(self)


class EntryIdentitySource:
    """Thread-safe; every read is non-blocking except :meth:`mint_jwt_svid`."""

    def __init__(
        self,
        *,
        entries: EntrySet,
        svids: EntrySvidManager,
        bundles: BundleHolder,
        jwt_api: JwtApi,
        clock: Clock,
    ) -> None:
        self._entries = entries
        self._svids = svids
        self._bundles = bundles
        self._jwt_api = jwt_api
        self._clock = clock
        self._lock = threading.Lock()
        self._subscriptions: list[_Subscription] = []
        self._jwts: OrderedDict[tuple[SpiffeId, tuple[str, ...]], _CachedJwt] = OrderedDict()
        self._unsubscribe_svids = svids.subscribe(self.notify)

    def close(self) -> None:
        self._unsubscribe_svids()

    # --- IdentitySource -----------------------------------------------------------------
    def identities_for(self, selectors: frozenset[Selector]) -> Sequence[WorkloadIdentity]:
        identities = []
        for entry in entries_for(selectors, self._entries.entries()):
            svid = self._svids.current(entry.entry_id)
            identities.append(
                WorkloadIdentity(
                    entry_id=entry.entry_id,
                    spiffe_id=entry.spiffe_id,
                    x509_svid=svid.material if svid is not None else None,
                    hint=entry.hint,
                )
            )
        return identities

    def trust_bundles(self) -> Sequence[TrustBundle]:
        bundle = self._bundles.bundle()
        return [bundle] if bundle is not None else []

    def crls(self) -> Sequence[bytes]:
        return self._bundles.crls()

    def mint_jwt_svid(self, spiffe_id: SpiffeId, audiences: tuple[str, ...]) -> str:
        """A JWT-SVID for an entry with ``spiffe_id`` (cached while fresh).

        Raises:
            NoIdentityError: the agent holds no entry for ``spiffe_id``.
            CaUnreachableError / CaRejectedError: the CA could not mint it.
        """
        key = (spiffe_id, tuple(sorted(set(audiences))))
        now = self._clock.now()
        with self._lock:
            cached = self._jwts.get(key)
            if cached is not None and cached.fresh_at(now):
                self._jwts.move_to_end(key)
                return cached.jwt.token
        entry = next((e for e in self._entries.entries() if e.spiffe_id == spiffe_id), None)
        if entry is None:
            raise NoIdentityError(f"this agent holds no entry for {spiffe_id}")
        jwt = self._jwt_api.new_jwt_svid(entry.entry_id, spiffe_id, audiences)
        with self._lock:
            self._jwts[key] = _CachedJwt(jwt, now)
            self._jwts.move_to_end(key)
            while len(self._jwts) > MAX_CACHED_JWTS:
                self._jwts.popitem(last=False)
        _log.debug("JWT-SVID for %s (entry %s) until %s", spiffe_id, entry.entry_id, jwt.expires_at)
        return jwt.token

    def subscribe(self, listener: Callable[[], None]) -> SourceSubscription:
        subscription = _Subscription(self, listener)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    # --- notifications ------------------------------------------------------------------
    def notify(self) -> None:
        """Tell every subscriber that answers may have changed (from any thread)."""
        with self._lock:
            listeners = [s.listener for s in self._subscriptions]
        for listener in listeners:
            try:
                listener()
            except Exception:  # one broken consumer must not starve the others
                _log.exception("identity source listener failed")

    def forget_jwts(self) -> None:
        """Drop cached JWT-SVIDs (after entries or JWT keys changed)."""
        with self._lock:
            self._jwts.clear()

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    def _drop(self, subscription: _Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)


_: type[IdentitySource] = EntryIdentitySource  # conformance with the consumer's protocol
