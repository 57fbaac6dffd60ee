"""Reading a consistent snapshot of the chain, its head and the certificate rows, and
handing them to :func:`citadel.store.audit_chain.verify_chain`."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from citadel.store import certificates
from citadel.store.audit_chain import StoredEvent, StoredHead, verify_chain
from citadel.store.models import AUDIT_HEAD_ID, AuditEventRow, AuditHeadRow
from citadel.store.records import AuditVerification

__all__ = ["verify"]

_BATCH = 1000


def _stored_head(session: Session) -> StoredHead | None:
    row = session.execute(
        select(AuditHeadRow.last_seq, AuditHeadRow.last_hash).where(
            AuditHeadRow.id == AUDIT_HEAD_ID
        )
    ).one_or_none()
    return None if row is None else StoredHead(last_seq=row.last_seq, last_hash=row.last_hash)


def _stored_events(session: Session) -> Iterator[StoredEvent]:
    table = AuditEventRow
    rows = session.execute(
        select(
            table.seq,
            table.at,
            table.action,
            table.subject,
            table.payload,
            table.prev_hash,
            table.hash,
        )
        .order_by(table.seq)
        .execution_options(yield_per=_BATCH)
    )
    for row in rows:
        yield StoredEvent(
            seq=row.seq,
            at=row.at,
            action=row.action,
            subject=row.subject,
            payload_json=row.payload,
            prev_hash=row.prev_hash,
            hash=row.hash,
        )


def verify(session: Session) -> AuditVerification:
    """Verify in the caller's (snapshot) transaction; events stream in seq order."""
    head = _stored_head(session)
    return verify_chain(_stored_events(session), head, certificates.iter_all(session, batch=_BATCH))
