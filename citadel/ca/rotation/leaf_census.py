"""Counting the unexpired, unrevoked leaves an authority signed (may it be retired yet?).

One indexed query (``ix_issued_certificates_issuer_not_after``, migration 0003): a range scan
of the issuer's leaves that expire after now. Its cost follows the number of leaves that
still hold the authority in place, not the size of the store, so a retirement check (or a
forced retirement) does not slow down concurrent issuance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from citadel.store.records import CertificateCount

__all__ = ["CensusStore", "LeafCensus", "LeafCount"]

SAMPLE_SERIALS = 3


class CensusStore(Protocol):
    def count_unexpired_certificates(
        self, *, issuer_fingerprints: Sequence[str], expiring_after: datetime, sample: int = 3
    ) -> CertificateCount: ...


@dataclass(frozen=True)
class LeafCount:
    """How many leaves still hold an authority in place, and until when.

    ``sample_serials`` are (up to three of) those expiring last, the very last one last.
    """

    count: int
    last_not_after: datetime | None
    sample_serials: tuple[str, ...]

    @property
    def none_remain(self) -> bool:
        return self.count == 0


class LeafCensus:
    def __init__(self, store: CensusStore) -> None:
        self._store = store

    def unexpired(self, issuer_fingerprints: Iterable[str], *, now: datetime) -> LeafCount:
        """Leaves signed by any of ``issuer_fingerprints`` valid after ``now``, not revoked."""
        issuers = sorted(set(issuer_fingerprints))
        if not issuers:
            return LeafCount(0, None, ())
        found = self._store.count_unexpired_certificates(
            issuer_fingerprints=issuers, expiring_after=now, sample=SAMPLE_SERIALS
        )
        return LeafCount(
            count=found.count,
            last_not_after=found.last_not_after,
            sample_serials=tuple(reversed(found.latest_serials)),
        )
