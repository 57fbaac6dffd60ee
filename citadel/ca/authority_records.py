"""Turning CA certificates into authority records and back (rotation, plug-in, upstream)."""

from __future__ import annotations

import secrets
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.errors import CaNotReadyError
from citadel.ca.external_key import is_external_key_ref
from citadel.identity.errors import InvalidCertificateError
from citadel.identity.pem import certificate_fingerprint, load_certificates_pem, serial_hex
from citadel.store.records import AuthorityRecord

__all__ = [
    "PENDING_UPSTREAM_KIND",
    "authority_record",
    "certificate_of",
    "is_own",
    "new_key_id",
    "short_id",
]

# Keys made for an upstream CSR are named "upstream-..." until their certificate is imported.
PENDING_UPSTREAM_KIND = "upstream"


def new_key_id(kind: str, now: datetime) -> str:
    """A fresh, sortable, file-name-safe id such as ``intermediate-20260601T120000Z-1a2b3c4d``."""
    return f"{kind}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def short_id(key_id: str) -> str:
    """The random tail of a key id (used to give each authority a distinct subject)."""
    return key_id.rsplit("-", 1)[-1]


def authority_record(
    *,
    authority_id: str,
    kind: str,
    cert: x509.Certificate,
    key_ref: str,
    parent_id: str | None,
    state: str,
    now: datetime,
) -> AuthorityRecord:
    return AuthorityRecord(
        id=authority_id,
        kind=kind,
        state=state,
        certificate_pem=cert.public_bytes(Encoding.PEM).decode("ascii"),
        key_ref=key_ref,
        serial_hex=serial_hex(cert),
        fingerprint_sha256=certificate_fingerprint(cert),
        parent_id=parent_id,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        created_at=now,
        activated_at=now if state == "active" else None,
    )


def certificate_of(record: AuthorityRecord) -> x509.Certificate:
    """The record's certificate, checked against its stored fingerprint.

    Raises:
        CaNotReadyError: the stored PEM is damaged or does not match the fingerprint.
    """
    try:
        certs = load_certificates_pem(record.certificate_pem, what="stored authority")
    except InvalidCertificateError as exc:
        raise CaNotReadyError(
            f"the stored certificate of authority {record.id} is damaged: {exc.message}"
        ) from exc
    if len(certs) != 1 or certificate_fingerprint(certs[0]) != record.fingerprint_sha256:
        raise CaNotReadyError(
            f"the stored certificate of authority {record.id} does not match its fingerprint"
        )
    return certs[0]


def is_own(record: AuthorityRecord) -> bool:
    """True when Citadel's key manager holds this authority's key."""
    return not is_external_key_ref(record.key_ref)
