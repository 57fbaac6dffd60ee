"""Named leases shared by replicas (rotation, singleton jobs).

A lock row names its holder and an expiry. Acquiring succeeds when the lock is free, already
held by the same holder (a renewal), or expired (a takeover). Each step is one conditional
statement (with RETURNING, as driver rowcounts are not reliable for INSERT ... ON CONFLICT), so
two replicas racing for the same lock cannot both win.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from citadel.store.models import LockRow

__all__ = ["release", "try_acquire"]


def try_acquire(session: Session, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
    connection = session.connection()
    expires_at = now + ttl
    renewed = connection.execute(
        update(LockRow)
        .where(
            LockRow.name == name,
            or_(LockRow.holder == holder, LockRow.expires_at <= now),
        )
        .values(holder=holder, expires_at=expires_at)
        .returning(LockRow.name)
    ).first()
    if renewed is not None:
        return True
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    created = connection.execute(
        dialect.insert(LockRow)
        .values(name=name, holder=holder, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=[LockRow.name])
        .returning(LockRow.name)
    ).first()
    return created is not None


def release(session: Session, name: str, holder: str) -> bool:
    """Release the lock if ``holder`` holds it; True when a lock was released."""
    released = (
        session.connection()
        .execute(
            delete(LockRow)
            .where(LockRow.name == name, LockRow.holder == holder)
            .returning(LockRow.name)
        )
        .first()
    )
    return released is not None
