"""The CSR and agent APIs' view of the CA lifecycle: revocation checks, CRLs, bundle acks.

The server is built before the replica services that own the
:class:`~citadel.ca.lifecycle.CaLifecycle` (they need the server's issuer), so the APIs are
wired to this link and the lifecycle is attached once it exists. Until then, and until the
lifecycle has loaded the revocations once, the revocation check reads the store per call:
a revoked certificate is never accepted for lack of an index. After that every check is an
in-memory lookup that also refuses leaves of a revoked intermediate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from cryptography import x509

from citadel.identity.pem import serial_hex
from citadel.store.errors import NotFoundError

__all__ = ["CertificateLookup", "LifecycleLink", "LifecycleView"]

_log = logging.getLogger(__name__)


class CertificateLookup(Protocol):
    def get_certificate(self, serial_hex: str) -> object: ...


class LifecycleView(Protocol):
    """What the APIs use of :class:`~citadel.ca.lifecycle.CaLifecycle`."""

    def is_certificate_revoked(self, cert: x509.Certificate) -> bool: ...

    def current_crls(self) -> list[bytes]: ...

    def record_bundle_ack(self, agent_id: str, version: str) -> None: ...

    @property
    def revocations_loaded_at(self) -> datetime | None: ...


class LifecycleLink:
    def __init__(self, store: CertificateLookup) -> None:
        self._store = store
        self._lifecycle: LifecycleView | None = None

    def attach(self, lifecycle: LifecycleView) -> None:
        self._lifecycle = lifecycle

    @property
    def attached(self) -> bool:
        return self._lifecycle is not None

    def is_revoked(self, cert: x509.Certificate) -> bool:
        """True when ``cert`` (or its signing authority) is revoked."""
        lifecycle = self._lifecycle
        if lifecycle is not None and lifecycle.revocations_loaded_at is not None:
            return lifecycle.is_certificate_revoked(cert)
        try:
            record = self._store.get_certificate(serial_hex(cert))
        except NotFoundError:
            return False
        return getattr(record, "revoked_at", None) is not None

    def crls(self) -> Sequence[bytes]:
        lifecycle = self._lifecycle
        return lifecycle.current_crls() if lifecycle is not None else ()

    def record_bundle_ack(self, agent_id: str, version: str) -> None:
        lifecycle = self._lifecycle
        if lifecycle is not None:
            lifecycle.record_bundle_ack(agent_id, version)
