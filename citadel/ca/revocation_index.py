"""An in-memory view of what is revoked, for checks on the hot path (mTLS renewal).

:meth:`RevocationIndex.refresh` reloads the revoked serials and the revoked authorities from
the store (the lifecycle loop calls it every few seconds; a revocation in this process is
noted at once with :meth:`note_revoked`). Lookups never touch the database.

:meth:`is_certificate_revoked` also refuses a leaf whose *signer* is a revoked authority, so
a leaf minted under a revoked intermediate fails even though its own serial is unknown.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from citadel.ca.authority_errors import UnknownSerialError
from citadel.ca.authority_records import certificate_of
from citadel.ca.revocation import normalise_serial_hex
from citadel.errors import CitadelError
from citadel.identity.clock import Clock
from citadel.identity.pem import serial_hex
from citadel.store.repository import Repository

__all__ = ["RevocationIndex"]

_log = logging.getLogger(__name__)
DEFAULT_MAX_AGE = timedelta(seconds=5)


class RevocationIndex:
    def __init__(
        self, repository: Repository, clock: Clock, *, max_age: timedelta = DEFAULT_MAX_AGE
    ) -> None:
        self._repository = repository
        self._clock = clock
        self._max_age = max_age
        self._serials: frozenset[str] = frozenset()
        self._authorities: tuple[x509.Certificate, ...] = ()
        self._loaded_at: datetime | None = None
        self._lock = threading.Lock()

    @property
    def loaded_at(self) -> datetime | None:
        return self._loaded_at

    def refresh(self) -> None:
        """Reload from the store.

        Raises:
            StoreError: the store cannot be read (the previous view stays in use).
        """
        serials = frozenset(r.serial_hex for r in self._repository.list_revocations())
        authorities = []
        for record in self._repository.list_authorities(states=["revoked"]):
            try:
                authorities.append(certificate_of(record))
            except CitadelError as exc:
                _log.warning("revoked authority %s unreadable: %s", record.id, exc.message)
        with self._lock:
            self._serials = serials
            self._authorities = tuple(authorities)
            self._loaded_at = self._clock.now()

    def refresh_if_stale(self) -> None:
        loaded = self._loaded_at
        if loaded is None or self._clock.now() - loaded >= self._max_age:
            self.refresh()

    def note_revoked(self, serial: str) -> None:
        """Count ``serial`` as revoked now, before the next refresh."""
        with self._lock:
            self._serials = self._serials | {serial}

    def is_revoked(self, serial: str) -> bool:
        """True when the certificate with this serial (hex, any case) is revoked."""
        try:
            key = normalise_serial_hex(serial)
        except UnknownSerialError:
            return False
        return key in self._serials

    def is_certificate_revoked(self, cert: x509.Certificate) -> bool:
        """True when ``cert`` is revoked or was signed by a revoked authority."""
        if serial_hex(cert) in self._serials:
            return True
        for authority in self._authorities:
            if authority.subject != cert.issuer:
                continue
            try:
                cert.verify_directly_issued_by(authority)
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                continue
            return True
        return False
