"""CRLs and extra PKIs for the trust-bundle tests (signed with real keys)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.crl import RevokedEntry, build_crl
from citadel.identity.keys import PrivateKey, signature_hash_for

__all__ = ["crl_der"]


def crl_der(
    issuer: x509.Certificate,
    key: PrivateKey,
    *,
    now: datetime,
    next_update: timedelta = timedelta(hours=1),
    this_update: datetime | None = None,
    revoked: Sequence[str] = (),
) -> bytes:
    """A DER CRL of ``issuer`` signed with ``key`` (``revoked``: hex serials)."""
    builder = build_crl(
        issuer,
        [RevokedEntry(serial, now - timedelta(minutes=1), None) for serial in revoked],
        number=1,
        this_update=this_update if this_update is not None else now - timedelta(minutes=2),
        next_update=now + next_update,
    )
    return builder.sign(key, signature_hash_for(key)).public_bytes(Encoding.DER)
