"""Domain records that go in and out of the repository.

ORM rows never leave :mod:`citadel.store`; callers see only these frozen dataclasses.
Every datetime is timezone-aware; the repository returns them in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

__all__ = [
    "AUTHORITY_KINDS",
    "AUTHORITY_STATES",
    "AUTHORITY_STATE_TRANSITIONS",
    "AuditEvent",
    "AuditVerification",
    "AuthorityRecord",
    "CertificateCount",
    "IssuanceInput",
    "IssuedCertificateRecord",
    "JoinTokenRecord",
]

AUTHORITY_KINDS: Final = frozenset({"root", "intermediate", "jwt"})
AUTHORITY_STATES: Final = frozenset({"prepared", "active", "retired", "revoked"})

# Which state an authority may move to from each state. "revoked" is terminal; "retired" may
# go back to "active" so that a rotation can be rolled back.
AUTHORITY_STATE_TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "prepared": frozenset({"active", "retired", "revoked"}),
    "active": frozenset({"retired", "revoked"}),
    "retired": frozenset({"active", "revoked"}),
    "revoked": frozenset(),
}


@dataclass(frozen=True, kw_only=True)
class AuthorityRecord:
    """A signing authority (root, intermediate) or a JWT signing key.

    Attributes:
        kind: ``"root"``, ``"intermediate"`` or ``"jwt"``.
        state: ``"prepared"``, ``"active"``, ``"retired"`` or ``"revoked"``.
        certificate_pem: the public certificate PEM; for kind ``"jwt"`` the public key PEM.
        key_ref: opaque id of the private key in its key manager (never key material).
        serial_hex: the certificate serial; empty for kind ``"jwt"``.
    """

    id: str
    kind: str
    state: str
    certificate_pem: str
    key_ref: str
    serial_hex: str
    fingerprint_sha256: str
    parent_id: str | None
    not_before: datetime
    not_after: datetime
    created_at: datetime
    activated_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class IssuanceInput:
    """One issued certificate, as the CA hands it to :meth:`Repository.record_issuances`."""

    serial_hex: str
    spiffe_id: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    issuer_fingerprint: str
    requester: str
    metadata: Mapping[str, str]
    certificate_pem: str
    issued_at: datetime


@dataclass(frozen=True, kw_only=True)
class IssuedCertificateRecord:
    """A stored issued certificate and its revocation state."""

    serial_hex: str
    spiffe_id: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    issuer_fingerprint: str
    requester: str
    metadata: Mapping[str, str]
    certificate_pem: str
    issued_at: datetime
    revoked_at: datetime | None = None
    revocation_reason: str | None = None

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, kw_only=True)
class CertificateCount:
    """How many stored certificates match a query, the latest ``not_after`` among them,
    and the serials of the (at most a few) that expire last, latest first."""

    count: int
    last_not_after: datetime | None
    latest_serials: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class AuditEvent:
    """One link of the audit hash chain.

    ``hash = sha256(prev_hash + "\\n" + canonical_json({seq, at, action, subject, payload}))``;
    see :mod:`citadel.store.audit_chain`.
    """

    seq: int
    at: datetime
    action: str
    subject: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, kw_only=True)
class AuditVerification:
    """The outcome of :meth:`Repository.verify_audit_chain`.

    Attributes:
        ok: the chain, its head and the certificate rows are consistent.
        checked: how many audit events were verified before the first problem (all, if ok).
        first_bad_seq: the lowest sequence number involved in the problem, when one is known.
        problem: a sentence describing the first problem found; None when ok.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str | None


@dataclass(frozen=True, kw_only=True)
class JoinTokenRecord:
    """A one-time node join token. Only the token's hash is stored; the caller hashes."""

    token_hash: str
    spiffe_id: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None = None
