"""Registration entries in the database (helpers take the session; see the repository).

Every change takes the next value of one revision counter (the ``registration_head`` row,
locked for the transaction), stamps it on the entry, and appends an audit event, so that
a reader can ask for "everything after revision N". A deleted entry keeps its row as a
tombstone carrying the revision of its deletion. Creating, deleting, renaming or
re-parenting an entry also logs its SPIFFE ID(s) as *moved* at that revision, because the
entries below it may have entered or left some agent's subtree.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy import update as sql_update
from sqlalchemy.orm import Session

from citadel.identity.errors import IdentityError
from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId
from citadel.store import audit
from citadel.store.entry_records import EntryChanges, EntryTombstone
from citadel.store.errors import ConflictError, NotFoundError, StoreError
from citadel.store.models import (
    REGISTRATION_HEAD_ID,
    RegistrationEntryRow,
    RegistrationHeadRow,
    RegistrationTreeChangeRow,
)

__all__ = [
    "changes_since",
    "create",
    "current_revision",
    "delete",
    "get",
    "list_live",
    "match_key",
    "update",
]


def match_key(entry: RegistrationEntry) -> str:
    """What makes two entries the same registration: parent, SPIFFE ID and selectors."""
    body = json.dumps(
        [str(entry.parent_id), str(entry.spiffe_id), sorted(str(s) for s in entry.selectors)],
        separators=(",", ":"),
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _selectors_json(entry: RegistrationEntry) -> str:
    return json.dumps(sorted(str(s) for s in entry.selectors), separators=(",", ":"))


def _to_entry(row: RegistrationEntryRow) -> RegistrationEntry:
    try:
        return RegistrationEntry(
            entry_id=row.entry_id,
            spiffe_id=SpiffeId.parse(row.spiffe_id),
            parent_id=SpiffeId.parse(row.parent_id),
            selectors=frozenset(Selector.parse(s) for s in json.loads(row.selectors_json)),
            ttl=timedelta(seconds=row.ttl_seconds) if row.ttl_seconds is not None else None,
            dns_names=tuple(json.loads(row.dns_names_json)),
            revision=row.revision,
            hint=row.hint,
        )
    except (IdentityError, ValueError, TypeError) as exc:
        raise StoreError(f"stored registration entry {row.entry_id!r} is damaged") from exc


def _values(entry: RegistrationEntry) -> dict[str, object]:
    return {
        "spiffe_id": str(entry.spiffe_id),
        "parent_id": str(entry.parent_id),
        "selectors_json": _selectors_json(entry),
        "ttl_seconds": int(entry.ttl.total_seconds()) if entry.ttl is not None else None,
        "dns_names_json": json.dumps(list(entry.dns_names), separators=(",", ":")),
        "hint": entry.hint,
        "match_key": match_key(entry),
    }


def _next_revision(session: Session) -> int:
    """Lock the revision counter for this transaction and advance it."""
    row = (
        session.connection()
        .execute(
            select(RegistrationHeadRow.last_revision)
            .where(RegistrationHeadRow.id == REGISTRATION_HEAD_ID)
            .with_for_update()
        )
        .one_or_none()
    )
    if row is None:
        raise StoreError("the registration revision row is missing; run the migrations")
    revision = int(row.last_revision) + 1
    session.connection().execute(
        sql_update(RegistrationHeadRow)
        .where(RegistrationHeadRow.id == REGISTRATION_HEAD_ID)
        .values(last_revision=revision)
    )
    return revision


def current_revision(session: Session) -> int:
    value = session.execute(
        select(RegistrationHeadRow.last_revision).where(
            RegistrationHeadRow.id == REGISTRATION_HEAD_ID
        )
    ).scalar_one_or_none()
    if value is None:
        raise StoreError("the registration revision row is missing; run the migrations")
    return int(value)


def _moved(session: Session, revision: int, spiffe_ids: Iterable[SpiffeId]) -> None:
    rows = [{"revision": revision, "spiffe_id": str(s)} for s in dict.fromkeys(spiffe_ids)]
    if rows:
        session.connection().execute(insert(RegistrationTreeChangeRow), rows)


def _audit(
    session: Session, action: str, entry: RegistrationEntry, revision: int, at: datetime
) -> None:
    payload = {
        "spiffe_id": str(entry.spiffe_id),
        "parent_id": str(entry.parent_id),
        "selectors": sorted(str(s) for s in entry.selectors),
        "ttl_seconds": int(entry.ttl.total_seconds()) if entry.ttl is not None else None,
        "dns_names": list(entry.dns_names),
        "revision": revision,
    }
    audit.append(
        session, [audit.AuditEntry(at=at, action=action, subject=entry.entry_id, payload=payload)]
    )


def _live_row(session: Session, entry_id: str, *, for_update: bool) -> RegistrationEntryRow:
    stmt = select(RegistrationEntryRow).where(
        RegistrationEntryRow.entry_id == entry_id, RegistrationEntryRow.deleted_at.is_(None)
    )
    if for_update:
        stmt = stmt.with_for_update()
    row = session.execute(stmt).scalar_one_or_none()
    if row is None:
        raise NotFoundError(f"no registration entry with id {entry_id!r}")
    return row


def _refuse_duplicate(session: Session, entry: RegistrationEntry) -> None:
    other = session.execute(
        select(RegistrationEntryRow.entry_id).where(
            RegistrationEntryRow.match_key == match_key(entry),
            RegistrationEntryRow.entry_id != entry.entry_id,
        )
    ).scalar_one_or_none()
    if other is not None:
        raise ConflictError(
            f"entry {other!r} already maps these selectors to {entry.spiffe_id} "
            f"under {entry.parent_id}"
        )


def create(session: Session, entry: RegistrationEntry, at: datetime) -> RegistrationEntry:
    if session.get(RegistrationEntryRow, entry.entry_id) is not None:
        raise ConflictError(
            f"a registration entry with id {entry.entry_id!r} exists (or existed: ids of "
            "deleted entries are not reused)"
        )
    _refuse_duplicate(session, entry)
    revision = _next_revision(session)
    session.execute(
        insert(RegistrationEntryRow).values(
            entry_id=entry.entry_id,
            revision=revision,
            created_at=at,
            updated_at=at,
            deleted_at=None,
            **_values(entry),
        )
    )
    _moved(session, revision, [entry.spiffe_id])
    stored = replace(entry, revision=revision)
    _audit(session, "entry_create", stored, revision, at)
    return stored


def update(session: Session, entry: RegistrationEntry, at: datetime) -> RegistrationEntry:
    row = _live_row(session, entry.entry_id, for_update=True)
    before = _to_entry(row)
    _refuse_duplicate(session, entry)
    revision = _next_revision(session)
    session.execute(
        sql_update(RegistrationEntryRow)
        .where(RegistrationEntryRow.entry_id == entry.entry_id)
        .values(revision=revision, updated_at=at, **_values(entry))
        .execution_options(synchronize_session=False)
    )
    moved: list[SpiffeId] = []
    if before.spiffe_id != entry.spiffe_id:
        moved += [before.spiffe_id, entry.spiffe_id]
    elif before.parent_id != entry.parent_id:
        moved.append(entry.spiffe_id)
    _moved(session, revision, moved)
    stored = replace(entry, revision=revision)
    _audit(session, "entry_update", stored, revision, at)
    return stored


def delete(session: Session, entry_id: str, at: datetime) -> EntryTombstone:
    row = _live_row(session, entry_id, for_update=True)
    before = _to_entry(row)
    revision = _next_revision(session)
    session.execute(
        sql_update(RegistrationEntryRow)
        .where(RegistrationEntryRow.entry_id == entry_id)
        .values(revision=revision, updated_at=at, deleted_at=at, match_key=None)
        .execution_options(synchronize_session=False)
    )
    _moved(session, revision, [before.spiffe_id])
    _audit(session, "entry_delete", before, revision, at)
    return EntryTombstone(entry_id=entry_id, revision=revision, deleted_at=at)


def get(session: Session, entry_id: str) -> RegistrationEntry:
    return _to_entry(_live_row(session, entry_id, for_update=False))


def list_live(
    session: Session, *, parent_id: str | None, since_revision: int | None
) -> list[RegistrationEntry]:
    stmt = select(RegistrationEntryRow).where(RegistrationEntryRow.deleted_at.is_(None))
    if parent_id is not None:
        stmt = stmt.where(RegistrationEntryRow.parent_id == parent_id)
    if since_revision is not None:
        stmt = stmt.where(RegistrationEntryRow.revision > since_revision)
    stmt = stmt.order_by(RegistrationEntryRow.created_at, RegistrationEntryRow.entry_id)
    return [_to_entry(row) for row in session.execute(stmt).scalars()]


def changes_since(session: Session, since_revision: int) -> EntryChanges:
    """Everything in ``(since_revision, current]``; the caller runs this in a snapshot."""
    revision = current_revision(session)
    window = (
        RegistrationEntryRow.revision > since_revision,
        RegistrationEntryRow.revision <= revision,
    )
    rows = session.execute(
        select(RegistrationEntryRow).where(*window).order_by(RegistrationEntryRow.revision)
    ).scalars()
    entries: list[RegistrationEntry] = []
    tombstones: list[EntryTombstone] = []
    for row in rows:
        if row.deleted_at is None:
            entries.append(_to_entry(row))
        else:
            tombstones.append(
                EntryTombstone(
                    entry_id=row.entry_id, revision=row.revision, deleted_at=row.deleted_at
                )
            )
    moved_rows = session.execute(
        select(RegistrationTreeChangeRow.revision, RegistrationTreeChangeRow.spiffe_id)
        .where(
            RegistrationTreeChangeRow.revision > since_revision,
            RegistrationTreeChangeRow.revision <= revision,
        )
        .order_by(RegistrationTreeChangeRow.revision, RegistrationTreeChangeRow.spiffe_id)
    ).all()
    try:
        moved = tuple((int(row.revision), SpiffeId.parse(row.spiffe_id)) for row in moved_rows)
    except IdentityError as exc:
        raise StoreError("a stored registration tree change is damaged") from exc
    return EntryChanges(
        since_revision=since_revision,
        revision=revision,
        entries=tuple(entries),
        tombstones=tuple(tombstones),
        moved=moved,
    )
