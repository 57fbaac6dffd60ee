"""One-time node join tokens. Only hashes are stored; the caller hashes the token."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, update
from sqlalchemy.orm import Session

from citadel.store.errors import ConflictError, TokenRejectedError
from citadel.store.models import JoinTokenRow
from citadel.store.records import JoinTokenRecord

__all__ = ["consume", "create"]


def create(session: Session, record: JoinTokenRecord) -> JoinTokenRecord:
    if session.get(JoinTokenRow, record.token_hash) is not None:
        raise ConflictError("a join token with this hash already exists")
    session.execute(
        insert(JoinTokenRow).values(
            token_hash=record.token_hash,
            spiffe_id=record.spiffe_id,
            created_at=record.created_at,
            expires_at=record.expires_at,
            used_at=None,
        )
    )
    return record


def consume(session: Session, token_hash: str, now: datetime) -> str:
    """Mark the token used and return its SPIFFE ID, in one conditional UPDATE.

    Two concurrent consumers cannot both succeed: the UPDATE only matches an unused row,
    and the row lock (PostgreSQL) or database lock (SQLite) orders them.
    """
    spiffe_id = session.execute(
        update(JoinTokenRow)
        .where(
            JoinTokenRow.token_hash == token_hash,
            JoinTokenRow.used_at.is_(None),
            JoinTokenRow.expires_at > now,
        )
        .values(used_at=now)
        .returning(JoinTokenRow.spiffe_id)
        .execution_options(synchronize_session=False)
    ).scalar_one_or_none()
    if spiffe_id is not None:
        return spiffe_id
    row = session.get(JoinTokenRow, token_hash)
    if row is None:
        raise TokenRejectedError("join token is unknown")
    if row.used_at is not None:
        raise TokenRejectedError("join token was already used")
    raise TokenRejectedError("join token has expired")
