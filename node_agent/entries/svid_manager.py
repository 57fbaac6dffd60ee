"""One X509-SVID per registration entry: a key made here, a batch CSR call, a verified chain.

Each entry has a slot with its current SVID and the instant it is next due. A round (on the
scheduler thread) takes every due slot, generates a fresh key per entry (keys never leave
the node), sends all CSRs in as few ``BatchNewX509SVID`` calls as possible, and verifies
each returned chain before keeping it: it must verify to the CA's roots, name exactly the
entry's SPIFFE ID, carry our key and be valid now. A chain for another ID is refused.

Renewal times and retries use the agent's pure rotation maths (:mod:`node_agent.rotation`):
``rotate_at`` of the issued SVID, or ``backoff_delay``/``retry_at`` after a failure (per
entry, never later than the current SVID's expiry).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.identity.clock import Clock
from citadel.identity.csr import build_csr
from citadel.identity.keys import (
    KeyType,
    PrivateKey,
    generate_private_key,
    private_key_to_pkcs8_pem,
)
from citadel.identity.pem import certificates_to_pem
from citadel.identity.registration import RegistrationEntry
from node_agent.entries.records import SvidAnswer, SvidOrder
from node_agent.errors import AgentError, CaRejectedError, IssuedChainError, TrustBundleError
from node_agent.issued_chain import verify_issued_chain
from node_agent.rotation import BackoffPolicy, RotationPolicy, backoff_delay, retry_at, rotate_at
from node_agent.scheduler import Scheduler
from node_agent.workload_api.source import X509SvidMaterial

__all__ = ["EntrySvid", "EntrySvidManager", "SvidPolicy", "SvidSigner"]

_log = logging.getLogger(__name__)
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class SvidSigner(Protocol):
    def batch_new_x509_svid(self, orders: Sequence[SvidOrder]) -> list[SvidAnswer]: ...


@dataclass(frozen=True, kw_only=True)
class SvidPolicy:
    key_type: KeyType = KeyType.EC_P256
    rotation: RotationPolicy = field(default_factory=RotationPolicy)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    max_batch: int = 128

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError("max_batch must be at least 1")


@dataclass(frozen=True, kw_only=True, slots=True)
class EntrySvid:
    """A verified X509-SVID for one entry (the key is never in ``repr``)."""

    entry_id: str
    material: X509SvidMaterial
    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    serial_hex: str
    not_before: datetime
    not_after: datetime


@dataclass(slots=True)
class _Slot:
    entry: RegistrationEntry
    due: datetime
    svid: EntrySvid | None = None
    failures: int = 0
    last_error: AgentError | None = None


def _needs_new_svid(before: RegistrationEntry, after: RegistrationEntry) -> bool:
    return (before.spiffe_id, before.ttl, before.dns_names) != (
        after.spiffe_id,
        after.ttl,
        after.dns_names,
    )


class EntrySvidManager:
    """Keeps an SVID per entry. ``set_entries`` from any thread; rounds on the scheduler."""

    TASK = "entry-svids"

    def __init__(
        self,
        *,
        signer: SvidSigner,
        roots: Callable[[], Sequence[x509.Certificate]],
        scheduler: Scheduler,
        clock: Clock,
        policy: SvidPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._signer = signer
        self._roots = roots
        self._scheduler = scheduler
        self._clock = clock
        self.policy = policy if policy is not None else SvidPolicy()
        self._rng = rng if rng is not None else random.SystemRandom()
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()  # the slots
        self._round = threading.Lock()  # one round at a time
        self._listeners: list[Callable[[], None]] = []
        self.refused = 0  # answers that failed verification (counted, never used)

    # --- reading ------------------------------------------------------------------------
    def current(self, entry_id: str) -> EntrySvid | None:
        """The entry's SVID while it is valid, else None."""
        with self._lock:
            slot = self._slots.get(entry_id)
            svid = slot.svid if slot is not None else None
        if svid is None or not svid.not_before <= self._clock.now() < svid.not_after:
            return None
        return svid

    def last_error(self, entry_id: str) -> AgentError | None:
        with self._lock:
            slot = self._slots.get(entry_id)
            return slot.last_error if slot is not None else None

    def next_due(self) -> datetime | None:
        with self._lock:
            return min((s.due for s in self._slots.values()), default=None)

    def subscribe(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener()`` after SVIDs change; returns the function that unsubscribes."""
        with self._lock:
            self._listeners.append(listener)

        def close() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return close

    # --- entries ------------------------------------------------------------------------
    def set_entries(self, entries: Sequence[RegistrationEntry]) -> None:
        """Track exactly ``entries``: new ones are due now, removed ones are dropped, and
        one whose SPIFFE ID, TTL or DNS names changed gets a new SVID now."""
        now = self._clock.now()
        changed = False
        with self._lock:
            wanted = {e.entry_id: e for e in entries}
            for entry_id in [k for k in self._slots if k not in wanted]:
                del self._slots[entry_id]
                changed = True
            for entry_id, entry in wanted.items():
                slot = self._slots.get(entry_id)
                if slot is None:
                    self._slots[entry_id] = _Slot(entry=entry, due=now)
                    continue
                if _needs_new_svid(slot.entry, entry):
                    slot.due = now
                    slot.failures = 0
                    if slot.entry.spiffe_id != entry.spiffe_id:
                        slot.svid = None  # never serve the old identity under the new entry
                        changed = True
                slot.entry = entry
        if changed:
            self._notify()
        self._schedule()

    # --- rounds -------------------------------------------------------------------------
    def run(self) -> int:
        """One round: renew every due entry. Returns how many SVIDs were obtained."""
        with self._round:
            now = self._clock.now()
            with self._lock:
                due = [replace(s) for s in self._slots.values() if s.due <= now]
            obtained = 0
            size = self.policy.max_batch
            for start in range(0, len(due), size):
                obtained += self._order(due[start : start + size])
            self._schedule()
            if obtained:
                self._notify()
            return obtained

    def _order(self, slots: Sequence[_Slot]) -> int:
        keys: list[PrivateKey] = []
        orders: list[SvidOrder] = []
        for slot in slots:
            key = generate_private_key(self.policy.key_type)
            csr = build_csr(key, slot.entry.spiffe_id, dns_names=slot.entry.dns_names)
            keys.append(key)
            orders.append(SvidOrder(slot.entry.entry_id, csr.public_bytes(Encoding.DER)))
        try:
            roots = list(self._roots())
            if not roots:
                raise TrustBundleError("no CA root is known yet to verify SVIDs with")
            answers = self._signer.batch_new_x509_svid(orders)
        except AgentError as exc:
            for slot in slots:
                self._failed(slot.entry, exc)
            return 0
        obtained = 0
        for slot, key, answer in zip(slots, keys, answers, strict=True):
            try:
                svid = self._verified(slot.entry, key, answer, roots)
            except AgentError as exc:
                self._failed(slot.entry, exc)
                continue
            if self._succeeded(slot.entry, svid):
                obtained += 1
        return obtained

    def _verified(
        self,
        entry: RegistrationEntry,
        key: PrivateKey,
        answer: SvidAnswer,
        roots: Sequence[x509.Certificate],
    ) -> EntrySvid:
        if not answer.ok:
            name = _STATUS_NAMES.get(answer.code, str(answer.code))
            raise CaRejectedError(
                f"CA refused the CSR for entry {entry.entry_id} ({name}: {answer.message})",
                code=name,
            )
        try:
            certs = [x509.load_der_x509_certificate(der) for der in answer.chain_der]
        except ValueError as exc:
            self.refused += 1
            raise IssuedChainError(
                f"CA returned a malformed chain for entry {entry.entry_id}"
            ) from exc
        if not certs:
            self.refused += 1
            raise IssuedChainError(f"CA returned an empty chain for entry {entry.entry_id}")
        chain = [certificates_to_pem([c]) for c in certs] + [certificates_to_pem(list(roots))]
        try:
            issued = verify_issued_chain(
                chain, expected=entry.spiffe_id, key=key, roots=roots, now=self._clock.now()
            )
        except IssuedChainError as exc:
            self.refused += 1
            raise IssuedChainError(f"entry {entry.entry_id}: {exc.message}") from exc
        served = (issued.leaf, *issued.intermediates)
        return EntrySvid(
            entry_id=entry.entry_id,
            material=X509SvidMaterial.from_chain(served, key),
            chain_pem=issued.chain_pem(),
            key_pem=private_key_to_pkcs8_pem(key),
            serial_hex=issued.serial_hex,
            not_before=issued.not_before,
            not_after=issued.not_after,
        )

    def _succeeded(self, entry: RegistrationEntry, svid: EntrySvid) -> bool:
        policy = self.policy.rotation
        now = self._clock.now()
        at = rotate_at(
            svid.not_before,
            svid.not_after,
            policy.ratio,
            policy.jitter_fraction,
            self._rng.uniform(-1.0, 1.0),
        )
        with self._lock:
            slot = self._slots.get(entry.entry_id)
            if slot is None or slot.entry.spiffe_id != entry.spiffe_id:
                return False  # the entry went away or changed while we were asking
            slot.svid = svid
            slot.failures = 0
            slot.last_error = None
            if slot.entry == entry:
                slot.due = max(at, now)
        _log.info(
            "SVID for entry %s (%s) serial=%s not_after=%s; next renewal at %s",
            entry.entry_id,
            entry.spiffe_id,
            svid.serial_hex,
            svid.not_after.isoformat(),
            max(at, now).isoformat(),
        )
        return True

    def _failed(self, entry: RegistrationEntry, exc: AgentError) -> None:
        now = self._clock.now()
        with self._lock:
            slot = self._slots.get(entry.entry_id)
            if slot is None:
                return
            delay = backoff_delay(slot.failures, self.policy.backoff, self._rng.uniform(-1.0, 1.0))
            slot.failures += 1
            slot.last_error = exc
            not_after = slot.svid.not_after if slot.svid is not None else None
            slot.due = retry_at(now, delay, not_after)
            failures, due = slot.failures, slot.due
        _log.warning(
            "no SVID for entry %s (%s) this time (%s: %s); retry %d at %s",
            entry.entry_id,
            entry.spiffe_id,
            exc.kind,
            exc.message,
            failures,
            due.isoformat(),
        )

    def _schedule(self) -> None:
        due = self.next_due()
        if due is None:
            self._scheduler.cancel(self.TASK)
            return
        if self._scheduler.due_at(self.TASK) != due:
            self._scheduler.schedule(self.TASK, due, self.run)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:  # one broken consumer must not starve the others
                _log.exception("SVID listener failed")
