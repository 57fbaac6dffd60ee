"""What the CA's agent API answers, as plain records (no protobuf beyond :mod:`.client`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from citadel.identity.bundle import TrustBundle
from citadel.identity.registration import RegistrationEntry
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["BundleUpdate", "EntryUpdate", "IssuedJwt", "SvidAnswer", "SvidOrder"]


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryUpdate:
    """One SyncEntries answer.

    Attributes:
        entries: entries to add or replace (the whole set when ``full``).
        tombstones: ``(entry_id, revision)`` of entries to drop.
        revision: where the agent's copy is after applying this.
        full: drop every entry not in ``entries``.
        skipped: entries in the answer that this agent cannot understand (left out).
    """

    entries: tuple[RegistrationEntry, ...]
    tombstones: tuple[tuple[str, int], ...]
    revision: int
    full: bool
    skipped: int = 0


@dataclass(frozen=True, slots=True)
class SvidOrder:
    """One item of a batch: the entry and the DER CSR for it."""

    entry_id: str
    csr_der: bytes


@dataclass(frozen=True, kw_only=True, slots=True)
class SvidAnswer:
    """One item's answer: a DER chain (leaf first, no root) or a status code and message."""

    entry_id: str
    chain_der: tuple[bytes, ...] = ()
    code: int = 0
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 0


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuedJwt:
    token: str = field(repr=False)
    spiffe_id: SpiffeId
    expires_at: datetime


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleUpdate:
    bundle: TrustBundle
    crls: tuple[bytes, ...] = ()
