"""Appending to and reading the audit chain (helpers take the session)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from citadel.store.audit_chain import (
    StoredHead,
    canonical_json,
    event_hash_of_json,
    isoformat_utc,
)
from citadel.store.errors import AuditChainError
from citadel.store.models import AUDIT_HEAD_ID, AuditEventRow, AuditHeadRow
from citadel.store.records import AuditEvent

__all__ = ["AuditEntry", "append", "list_events", "lock_head"]


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """An event to append; seq and hashes are assigned under the head lock."""

    at: datetime
    action: str
    subject: str
    payload: Mapping[str, Any]


def lock_head(session: Session) -> StoredHead:
    """Lock the audit head row for the rest of the transaction and return it.

    PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite: the write transaction already holds the
    database lock (``BEGIN IMMEDIATE``).
    """
    row = (
        session.connection()
        .execute(
            select(AuditHeadRow.last_seq, AuditHeadRow.last_hash)
            .where(AuditHeadRow.id == AUDIT_HEAD_ID)
            .with_for_update()
        )
        .one_or_none()
    )
    if row is None:
        raise AuditChainError("the audit head row is missing; the audit chain cannot grow")
    return StoredHead(last_seq=row.last_seq, last_hash=row.last_hash)


def append(
    session: Session, entries: Sequence[AuditEntry], *, head: StoredHead | None = None
) -> list[AuditEvent]:
    """Append ``entries`` in order after the head; returns the stored events.

    Pass ``head`` when this transaction already holds it from :func:`lock_head`.
    """
    if not entries:
        return []
    if head is None:
        head = lock_head(session)
    seq, prev_hash = head.last_seq, head.last_hash
    rows: list[dict[str, Any]] = []
    events: list[AuditEvent] = []
    for entry in entries:
        seq += 1
        # Store (and hash) the canonical text of the payload as it reads back: JSON turns
        # tuples into lists and keys into strings, which can change the canonical key order
        # ({2: .., 10: ..} sorts differently from {"2": .., "10": ..}), and the verifier
        # checks the stored text against the payload it parses.
        payload = json.loads(canonical_json(entry.payload))
        payload_json = canonical_json(payload)
        digest = event_hash_of_json(
            prev_hash=prev_hash,
            seq=seq,
            at_iso=isoformat_utc(entry.at),
            action=entry.action,
            subject=entry.subject,
            payload_json=payload_json,
        )
        rows.append(
            {
                "seq": seq,
                "at": entry.at,
                "action": entry.action,
                "subject": entry.subject,
                "payload": payload_json,
                "prev_hash": prev_hash,
                "hash": digest,
            }
        )
        events.append(
            AuditEvent(
                seq=seq,
                at=entry.at,
                action=entry.action,
                subject=entry.subject,
                payload=payload,
                prev_hash=prev_hash,
                hash=digest,
            )
        )
        prev_hash = digest
    connection = session.connection()
    connection.execute(insert(AuditEventRow), rows)
    connection.execute(
        update(AuditHeadRow)
        .where(AuditHeadRow.id == AUDIT_HEAD_ID)
        .values(last_seq=seq, last_hash=prev_hash)
    )
    return events


def list_events(session: Session, *, after_seq: int, limit: int) -> list[AuditEvent]:
    rows = session.execute(
        select(AuditEventRow)
        .where(AuditEventRow.seq > after_seq)
        .order_by(AuditEventRow.seq)
        .limit(limit)
    ).scalars()
    return [_to_event(row) for row in rows]


def _to_event(row: AuditEventRow) -> AuditEvent:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        payload = {"unreadable_payload": row.payload}
    return AuditEvent(
        seq=row.seq,
        at=row.at,
        action=row.action,
        subject=row.subject,
        payload=payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )
