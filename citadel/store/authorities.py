"""Signing authorities (roots, intermediates, JWT keys) and their lifecycle state."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from citadel.store.errors import ConflictError, NotFoundError
from citadel.store.models import AuthorityRow
from citadel.store.records import (
    AUTHORITY_KINDS,
    AUTHORITY_STATE_TRANSITIONS,
    AUTHORITY_STATES,
    AuthorityRecord,
)
from citadel.store.validation import (
    MAX_FINGERPRINT_BYTES,
    MAX_NAME_BYTES,
    MAX_SERIAL_BYTES,
    check_aware,
    check_choice,
    check_optional_aware,
    check_text,
)

__all__ = ["checked_authority", "get", "list_filtered", "save", "set_state", "to_record"]


def _checked_serial(record: AuthorityRecord) -> str:
    """X.509 authorities have a serial; a JWT key has none, so it may be empty."""
    if record.kind == "jwt" and record.serial_hex == "":
        return ""
    return check_text("serial_hex", record.serial_hex, max_bytes=MAX_SERIAL_BYTES)


def checked_authority(record: AuthorityRecord) -> AuthorityRecord:
    """Validate an authority and return it with UTC datetimes."""
    if not isinstance(record, AuthorityRecord):
        raise TypeError(f"expected AuthorityRecord, not {type(record).__name__}")
    return AuthorityRecord(
        id=check_text("id", record.id, max_bytes=MAX_NAME_BYTES),
        kind=check_choice("kind", record.kind, AUTHORITY_KINDS),
        state=check_choice("state", record.state, AUTHORITY_STATES),
        certificate_pem=check_text("certificate_pem", record.certificate_pem),
        key_ref=check_text("key_ref", record.key_ref),
        serial_hex=_checked_serial(record),
        fingerprint_sha256=check_text(
            "fingerprint_sha256", record.fingerprint_sha256, max_bytes=MAX_FINGERPRINT_BYTES
        ),
        parent_id=(
            None
            if record.parent_id is None
            else check_text("parent_id", record.parent_id, max_bytes=MAX_NAME_BYTES)
        ),
        not_before=check_aware("not_before", record.not_before),
        not_after=check_aware("not_after", record.not_after),
        created_at=check_aware("created_at", record.created_at),
        activated_at=check_optional_aware("activated_at", record.activated_at),
    )


def to_record(row: AuthorityRow) -> AuthorityRecord:
    return AuthorityRecord(
        id=row.id,
        kind=row.kind,
        state=row.state,
        certificate_pem=row.certificate_pem,
        key_ref=row.key_ref,
        serial_hex=row.serial_hex,
        fingerprint_sha256=row.fingerprint_sha256,
        parent_id=row.parent_id,
        not_before=row.not_before,
        not_after=row.not_after,
        created_at=row.created_at,
        activated_at=row.activated_at,
    )


def _find(session: Session, authority_id: str, *, for_update: bool = False) -> AuthorityRow:
    stmt = select(AuthorityRow).where(AuthorityRow.id == authority_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no authority with id {authority_id!r}")
    return row


def save(session: Session, record: AuthorityRecord) -> AuthorityRecord:
    if record.parent_id is not None and session.get(AuthorityRow, record.parent_id) is None:
        raise NotFoundError(f"parent authority {record.parent_id!r} does not exist")
    if session.get(AuthorityRow, record.id) is not None:
        raise ConflictError(f"an authority with id {record.id!r} already exists")
    session.execute(
        insert(AuthorityRow).values(
            id=record.id,
            kind=record.kind,
            state=record.state,
            certificate_pem=record.certificate_pem,
            key_ref=record.key_ref,
            serial_hex=record.serial_hex,
            fingerprint_sha256=record.fingerprint_sha256,
            parent_id=record.parent_id,
            not_before=record.not_before,
            not_after=record.not_after,
            created_at=record.created_at,
            activated_at=record.activated_at,
        )
    )
    return record


def get(session: Session, authority_id: str) -> AuthorityRecord:
    return to_record(_find(session, authority_id))


def list_filtered(
    session: Session, *, kind: str | None, states: Collection[str] | None
) -> list[AuthorityRecord]:
    stmt = select(AuthorityRow)
    if kind is not None:
        stmt = stmt.where(AuthorityRow.kind == kind)
    if states is not None:
        stmt = stmt.where(AuthorityRow.state.in_(list(states)))
    stmt = stmt.order_by(AuthorityRow.created_at, AuthorityRow.id)
    return [to_record(row) for row in session.execute(stmt).scalars()]


def set_state(session: Session, authority_id: str, state: str, at: datetime) -> AuthorityRecord:
    """Move an authority to ``state``; becoming active stamps ``activated_at``."""
    row = _find(session, authority_id, for_update=True)
    current = to_record(row)
    if state not in AUTHORITY_STATE_TRANSITIONS[current.state]:
        raise ConflictError(
            f"authority {authority_id!r} cannot go from {current.state!r} to {state!r}"
        )
    activated_at = at if state == "active" else current.activated_at
    session.execute(
        update(AuthorityRow)
        .where(AuthorityRow.id == authority_id)
        .values(state=state, activated_at=activated_at)
        .execution_options(synchronize_session=False)
    )
    return replace(current, state=state, activated_at=activated_at)
