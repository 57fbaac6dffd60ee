"""Issued certificates: recording (with their audit events), lookup, listing, revocation."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from citadel.store import audit
from citadel.store.audit_chain import canonical_json, issuance_payload, revocation_payload
from citadel.store.errors import ConflictError, NotFoundError
from citadel.store.models import IssuedCertificateRow
from citadel.store.records import AuditEvent, IssuanceInput, IssuedCertificateRecord
from citadel.store.validation import (
    MAX_ACTION_BYTES,
    MAX_FINGERPRINT_BYTES,
    MAX_SERIAL_BYTES,
    MAX_SPIFFE_ID_BYTES,
    check_aware,
    check_metadata,
    check_text,
)

__all__ = [
    "MAX_LIST_LIMIT",
    "checked_batch",
    "checked_issuance",
    "get",
    "iter_all",
    "list_filtered",
    "list_revocations",
    "record",
    "revoke",
    "to_record",
]

MAX_LIST_LIMIT = 10_000

_CORRUPT_METADATA_KEY = "\x00unreadable"


def checked_issuance(item: IssuanceInput) -> IssuanceInput:
    """Validate one issuance and return it with UTC datetimes and a plain-dict metadata copy."""
    if not isinstance(item, IssuanceInput):
        raise TypeError(f"expected IssuanceInput, not {type(item).__name__}")
    return IssuanceInput(
        serial_hex=check_text("serial_hex", item.serial_hex, max_bytes=MAX_SERIAL_BYTES),
        spiffe_id=check_text("spiffe_id", item.spiffe_id, max_bytes=MAX_SPIFFE_ID_BYTES),
        not_before=check_aware("not_before", item.not_before),
        not_after=check_aware("not_after", item.not_after),
        fingerprint_sha256=check_text(
            "fingerprint_sha256", item.fingerprint_sha256, max_bytes=MAX_FINGERPRINT_BYTES
        ),
        issuer_fingerprint=check_text(
            "issuer_fingerprint", item.issuer_fingerprint, max_bytes=MAX_FINGERPRINT_BYTES
        ),
        requester=check_text("requester", item.requester),
        metadata=check_metadata("metadata", item.metadata),
        certificate_pem=check_text("certificate_pem", item.certificate_pem),
        issued_at=check_aware("issued_at", item.issued_at),
    )


def checked_batch(batch: Sequence[IssuanceInput], action: str) -> list[IssuanceInput]:
    """Validate a batch and its audit action; duplicate serials within it are a conflict."""
    check_text("requester_action", action, max_bytes=MAX_ACTION_BYTES)
    checked = [checked_issuance(item) for item in batch]
    seen: set[str] = set()
    for item in checked:
        if item.serial_hex in seen:
            raise ConflictError(
                f"record_issuances: serial {item.serial_hex} appears twice in the batch"
            )
        seen.add(item.serial_hex)
    return checked


def _row_values(item: IssuanceInput) -> dict[str, Any]:
    return {
        "serial_hex": item.serial_hex,
        "spiffe_id": item.spiffe_id,
        "not_before": item.not_before,
        "not_after": item.not_after,
        "fingerprint_sha256": item.fingerprint_sha256,
        "issuer_fingerprint": item.issuer_fingerprint,
        "requester": item.requester,
        "metadata_json": canonical_json(dict(item.metadata)),
        "certificate_pem": item.certificate_pem,
        "issued_at": item.issued_at,
        "revoked_at": None,
        "revocation_reason": None,
    }


def _metadata(text: str) -> dict[str, str]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return value
    # Only a tampered row gets here; keep it readable (verification will flag it).
    return {_CORRUPT_METADATA_KEY: text}


def to_record(row: IssuedCertificateRow) -> IssuedCertificateRecord:
    return IssuedCertificateRecord(
        serial_hex=row.serial_hex,
        spiffe_id=row.spiffe_id,
        not_before=row.not_before,
        not_after=row.not_after,
        fingerprint_sha256=row.fingerprint_sha256,
        issuer_fingerprint=row.issuer_fingerprint,
        requester=row.requester,
        metadata=_metadata(row.metadata_json),
        certificate_pem=row.certificate_pem,
        issued_at=row.issued_at,
        revoked_at=row.revoked_at,
        revocation_reason=row.revocation_reason,
    )


def record(session: Session, batch: Sequence[IssuanceInput], action: str) -> list[AuditEvent]:
    """Insert a validated batch and one audit event per certificate (head locked first)."""
    if not batch:
        return []
    head = audit.lock_head(session)  # serializes issuers: the duplicate check cannot race
    serials = [item.serial_hex for item in batch]
    connection = session.connection()
    existing = connection.execute(
        select(IssuedCertificateRow.serial_hex).where(IssuedCertificateRow.serial_hex.in_(serials))
    ).scalars()
    duplicates = sorted(existing)
    if duplicates:
        shown = ", ".join(duplicates[:5]) + (" ..." if len(duplicates) > 5 else "")
        raise ConflictError(f"record_issuances: serial already recorded: {shown}")
    events = audit.append(
        session,
        [
            audit.AuditEntry(
                at=item.issued_at,
                action=action,
                subject=item.spiffe_id,
                payload=issuance_payload(item),
            )
            for item in batch
        ],
        head=head,
    )
    connection.execute(insert(IssuedCertificateRow), [_row_values(item) for item in batch])
    return events


def _find(session: Session, serial_hex: str, *, for_update: bool = False) -> IssuedCertificateRow:
    stmt = select(IssuedCertificateRow).where(IssuedCertificateRow.serial_hex == serial_hex)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no certificate with serial {serial_hex}")
    return row


def get(session: Session, serial_hex: str) -> IssuedCertificateRecord:
    return to_record(_find(session, serial_hex))


def list_filtered(
    session: Session,
    *,
    spiffe_id_prefix: str | None,
    expiring_before: datetime | None,
    revoked: bool | None,
    limit: int,
) -> list[IssuedCertificateRecord]:
    stmt = select(IssuedCertificateRow)
    if spiffe_id_prefix is not None:
        stmt = stmt.where(
            IssuedCertificateRow.spiffe_id.startswith(spiffe_id_prefix, autoescape=True)
        )
    if expiring_before is not None:
        stmt = stmt.where(IssuedCertificateRow.not_after < expiring_before)
    if revoked is True:
        stmt = stmt.where(IssuedCertificateRow.revoked_at.is_not(None))
    elif revoked is False:
        stmt = stmt.where(IssuedCertificateRow.revoked_at.is_(None))
    stmt = stmt.order_by(IssuedCertificateRow.not_after, IssuedCertificateRow.serial_hex)
    return [to_record(row) for row in session.execute(stmt.limit(limit)).scalars()]


def revoke(session: Session, serial_hex: str, reason: str, at: datetime) -> IssuedCertificateRecord:
    """Mark a certificate revoked and append the revocation event, atomically."""
    audit.lock_head(session)  # one lock order for every audited write: head first
    row = _find(session, serial_hex, for_update=True)
    if row.revoked_at is not None:
        raise ConflictError(f"certificate {serial_hex} is already revoked")
    session.execute(
        update(IssuedCertificateRow)
        .where(IssuedCertificateRow.serial_hex == serial_hex)
        .values(revoked_at=at, revocation_reason=reason)
        .execution_options(synchronize_session=False)
    )
    audit.append(
        session,
        [
            audit.AuditEntry(
                at=at,
                action="revoke",
                subject=row.spiffe_id,
                payload=revocation_payload(
                    serial_hex=serial_hex, spiffe_id=row.spiffe_id, reason=reason, revoked_at=at
                ),
            )
        ],
    )
    return replace(to_record(row), revoked_at=at, revocation_reason=reason)


def list_revocations(
    session: Session, issuer_fingerprint: str | None
) -> list[IssuedCertificateRecord]:
    stmt = select(IssuedCertificateRow).where(IssuedCertificateRow.revoked_at.is_not(None))
    if issuer_fingerprint is not None:
        stmt = stmt.where(IssuedCertificateRow.issuer_fingerprint == issuer_fingerprint)
    stmt = stmt.order_by(IssuedCertificateRow.revoked_at, IssuedCertificateRow.serial_hex)
    return [to_record(row) for row in session.execute(stmt).scalars()]


def iter_all(session: Session, *, batch: int) -> Iterator[IssuedCertificateRecord]:
    """Every certificate row, streamed in serial order."""
    rows = session.execute(
        select(IssuedCertificateRow)
        .order_by(IssuedCertificateRow.serial_hex)
        .execution_options(yield_per=batch)
    ).scalars()
    for row in rows:
        yield to_record(row)
