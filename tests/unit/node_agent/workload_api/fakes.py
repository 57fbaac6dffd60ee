"""An in-memory :class:`IdentitySource` for Workload API tests (the agent cache stands in).

It keeps registration entries with their current X509-SVIDs, trust bundles and CRLs,
mints JWT-SVIDs with an in-process signer, and notifies subscribers on every change,
from the calling thread, exactly as the real cache does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import Clock
from citadel.identity.jwt_svid import JwtSigner, mint_jwt_svid
from citadel.identity.registration import RegistrationEntry, entries_for
from citadel.identity.selectors import Selector, parse_selectors
from citadel.identity.spiffe_id import SpiffeId
from node_agent.errors import AgentError
from node_agent.workload_api.source import IdentitySource, WorkloadIdentity, X509SvidMaterial
from tests.fixtures.pki import Pki

__all__ = ["FakeIdentitySource", "make_entry", "svid_material"]

AGENT_ID = SpiffeId.parse("spiffe://example.org/agent/test-node")


def make_entry(entry_id: str, spiffe_id: str, *selectors: str, hint: str = "") -> RegistrationEntry:
    return RegistrationEntry(
        entry_id=entry_id,
        spiffe_id=SpiffeId.parse(spiffe_id),
        parent_id=AGENT_ID,
        selectors=parse_selectors(selectors),
        hint=hint,
    )


def svid_material(pki: Pki, spiffe_id: SpiffeId, **kwargs: object) -> X509SvidMaterial:
    """A fresh leaf from ``pki`` for ``spiffe_id``, chain = [leaf, intermediate]."""
    leaf, key = pki.issue_leaf(spiffe_id.path, **kwargs)  # type: ignore[arg-type]
    return X509SvidMaterial.from_chain([leaf, pki.intermediate], key)


class _Subscription:
    def __init__(self, source: FakeIdentitySource, listener: Callable[[], None]) -> None:
        self._source = source
        self.listener = listener
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._source._drop(self)


@dataclass
class _State:
    entries: list[tuple[RegistrationEntry, X509SvidMaterial | None]] = field(default_factory=list)
    bundles: list[TrustBundle] = field(default_factory=list)
    crls: list[bytes] = field(default_factory=list)


class FakeIdentitySource:
    def __init__(
        self,
        *,
        clock: Clock,
        signer: JwtSigner | None = None,
        bundles: Sequence[TrustBundle] = (),
        jwt_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        self._clock = clock
        self._signer = signer
        self._jwt_ttl = jwt_ttl
        self._state = _State(bundles=list(bundles))
        self._subscriptions: list[_Subscription] = []
        self._lock = threading.Lock()
        self.mint_calls: list[tuple[SpiffeId, tuple[str, ...]]] = []
        self.mint_error: AgentError | None = None
        self.attested: list[frozenset[Selector]] = []

    # --- test controls -------------------------------------------------------------------
    def put(self, entry: RegistrationEntry, svid: X509SvidMaterial | None) -> None:
        """Add or replace (by entry id) an entry and its current SVID; notifies."""
        with self._lock:
            kept = [(e, s) for e, s in self._state.entries if e.entry_id != entry.entry_id]
            index = next(
                (i for i, (e, _) in enumerate(self._state.entries) if e.entry_id == entry.entry_id),
                len(kept),
            )
            kept.insert(index, (entry, svid))
            self._state.entries = kept
        self._notify()

    def remove(self, entry_id: str) -> None:
        with self._lock:
            self._state.entries = [(e, s) for e, s in self._state.entries if e.entry_id != entry_id]
        self._notify()

    def set_bundles(self, bundles: Sequence[TrustBundle]) -> None:
        with self._lock:
            self._state.bundles = list(bundles)
        self._notify()

    def set_crls(self, crls: Sequence[bytes]) -> None:
        with self._lock:
            self._state.crls = list(crls)
        self._notify()

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscriptions)

    # --- IdentitySource ------------------------------------------------------------------
    def identities_for(self, selectors: frozenset[Selector]) -> Sequence[WorkloadIdentity]:
        with self._lock:
            self.attested.append(selectors)
            svids = {e.entry_id: s for e, s in self._state.entries}
            matching = entries_for(selectors, [e for e, _ in self._state.entries])
        return [
            WorkloadIdentity(
                entry_id=e.entry_id, spiffe_id=e.spiffe_id, x509_svid=svids[e.entry_id], hint=e.hint
            )
            for e in matching
        ]

    def trust_bundles(self) -> Sequence[TrustBundle]:
        with self._lock:
            return list(self._state.bundles)

    def crls(self) -> Sequence[bytes]:
        with self._lock:
            return list(self._state.crls)

    def mint_jwt_svid(self, spiffe_id: SpiffeId, audiences: tuple[str, ...]) -> str:
        self.mint_calls.append((spiffe_id, audiences))
        if self.mint_error is not None:
            raise self.mint_error
        if self._signer is None:
            raise AssertionError("this fake source has no JWT signer")
        return mint_jwt_svid(
            self._signer, spiffe_id, audiences, ttl=self._jwt_ttl, now=self._clock.now()
        )

    def subscribe(self, listener: Callable[[], None]) -> _Subscription:
        subscription = _Subscription(self, listener)
        with self._lock:
            self._subscriptions.append(subscription)
        return subscription

    def _drop(self, subscription: _Subscription) -> None:
        with self._lock:
            if subscription in self._subscriptions:
                self._subscriptions.remove(subscription)

    def _notify(self) -> None:
        with self._lock:
            listeners = [s.listener for s in self._subscriptions]
        for listener in listeners:
            listener()


_: type[IdentitySource] = FakeIdentitySource  # conformance with the consumer's protocol
