"""Counting the unexpired, unrevoked leaves an authority signed (may it be retired yet?).

The repository lists certificates by expiry, soonest first, without an issuer filter. While
everything that expires before the authority does fits in one listing, that listing is the
exact answer. Beyond that (a long-lived store full of expired leaves), the census reads the
issuance events of the audit log instead, starting at the first event that can still
belong to a valid leaf (found by binary search on the event time), so the scan covers at
most one maximum leaf lifetime of issuance.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from citadel.store.records import AuditEvent, IssuedCertificateRecord

__all__ = ["CensusStore", "LeafCensus", "LeafCount"]

PAGE_LIMIT = 10_000
TIME_MARGIN = timedelta(hours=1)
ISSUE_ACTION = "issue"


class CensusStore(Protocol):
    def list_certificates(
        self,
        *,
        spiffe_id_prefix: str | None = None,
        expiring_before: datetime | None = None,
        revoked: bool | None = None,
        limit: int = 1000,
    ) -> list[IssuedCertificateRecord]: ...

    def list_audit(self, after_seq: int = 0, limit: int = 1000) -> list[AuditEvent]: ...

    def list_revocations(
        self, issuer_fingerprint: str | None = None
    ) -> list[IssuedCertificateRecord]: ...


@dataclass(frozen=True)
class LeafCount:
    """How many leaves still hold an authority in place, and until when."""

    count: int
    last_not_after: datetime | None
    sample_serials: tuple[str, ...]

    @property
    def none_remain(self) -> bool:
        return self.count == 0


def _count(found: Mapping[str, datetime]) -> LeafCount:
    ordered = sorted(found.items(), key=lambda item: item[1])
    return LeafCount(
        count=len(ordered),
        last_not_after=ordered[-1][1] if ordered else None,
        sample_serials=tuple(serial for serial, _ in ordered[-3:]),
    )


def _issued_leaf(event: AuditEvent, issuers: Collection[str]) -> tuple[str, datetime] | None:
    payload: Mapping[str, Any] = event.payload
    if event.action != ISSUE_ACTION or payload.get("issuer_fingerprint") not in issuers:
        return None
    serial, not_after = payload.get("serial"), payload.get("not_after")
    if not isinstance(serial, str) or not isinstance(not_after, str):
        return None
    try:
        return serial, datetime.fromisoformat(not_after)
    except ValueError:
        return None


class LeafCensus:
    def __init__(self, store: CensusStore, *, page_limit: int = PAGE_LIMIT) -> None:
        if not 1 <= page_limit <= PAGE_LIMIT:
            raise ValueError(f"page_limit must be between 1 and {PAGE_LIMIT}")
        self._store = store
        self._page = page_limit

    def unexpired(
        self,
        issuer_fingerprints: Iterable[str],
        *,
        now: datetime,
        not_after_bound: datetime,
        issued_since: datetime,
    ) -> LeafCount:
        """Leaves signed by any of ``issuer_fingerprints`` valid after ``now`` and not revoked.

        Args:
            not_after_bound: no leaf of these issuers expires after this (their NotAfter).
            issued_since: no such leaf that is still valid was issued before this.
        """
        issuers = frozenset(issuer_fingerprints)
        if not issuers:
            return _count({})
        listed = self._store.list_certificates(
            expiring_before=not_after_bound + timedelta(seconds=1), revoked=False, limit=self._page
        )
        if len(listed) < self._page:
            return _count(
                {
                    r.serial_hex: r.not_after
                    for r in listed
                    if r.issuer_fingerprint in issuers and r.not_after > now
                }
            )
        return self._from_audit(issuers, now=now, issued_since=issued_since - TIME_MARGIN)

    # ---------------------------------------------------------------- audit scan

    def _event_after(self, seq: int) -> AuditEvent | None:
        events = self._store.list_audit(after_seq=seq, limit=1)
        return events[0] if events else None

    def _start_after(self, since: datetime) -> int:
        """The largest ``after_seq`` such that every later event is at or after ``since``
        (events are appended in time order)."""
        high = 1024
        while self._event_after(high) is not None:
            high *= 2
        low = 0
        while low < high:
            middle = (low + high) // 2
            event = self._event_after(middle)
            if event is None or event.at >= since:
                high = middle
            else:
                low = middle + 1
        return low

    def _from_audit(
        self, issuers: frozenset[str], *, now: datetime, issued_since: datetime
    ) -> LeafCount:
        found: dict[str, datetime] = {}
        after = self._start_after(issued_since)
        while True:
            events = self._store.list_audit(after_seq=after, limit=self._page)
            for event in events:
                leaf = _issued_leaf(event, issuers)
                if leaf is not None and leaf[1] > now:
                    found[leaf[0]] = leaf[1]
            if len(events) < self._page:
                break
            after = events[-1].seq
        for issuer in issuers:
            for revoked in self._store.list_revocations(issuer_fingerprint=issuer):
                found.pop(revoked.serial_hex, None)
        return _count(found)
