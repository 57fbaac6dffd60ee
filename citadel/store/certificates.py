"""Issued certificates: recording (with their audit events), lookup, listing, revocation."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

from citadel.store import audit
from citadel.store.audit_chain import (
    IssuanceTexts,
    event_hash_of_json,
    issuance_texts,
    revocation_payload,
)
from citadel.store.errors import AuditChainError, ConflictError, NotFoundError
from citadel.store.models import (
    AUDIT_HEAD_ID,
    AuditEventRow,
    AuditHeadRow,
    Base,
    IssuedCertificateRow,
)
from citadel.store.records import (
    AuditEvent,
    CertificateCount,
    IssuanceInput,
    IssuedCertificateRecord,
)
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
    "ROWS_PER_STATEMENT",
    "ChainLink",
    "IssuanceSql",
    "PreparedIssuance",
    "already_recorded",
    "checked_batch",
    "checked_issuance",
    "chunks",
    "get",
    "issued_events",
    "iter_all",
    "list_filtered",
    "list_revocations",
    "prepare_batch",
    "record",
    "revoke",
    "stored_serials",
    "to_record",
]

MAX_LIST_LIMIT = 10_000
_T = TypeVar("_T")

_CORRUPT_METADATA_KEY = "\x00unreadable"


def checked_issuance(item: IssuanceInput) -> IssuanceInput:
    """Validate one issuance and return it with UTC datetimes and a plain-dict metadata copy."""
    checked = _validated(item)
    return replace(checked, metadata=dict(checked.metadata)) if checked is item else checked


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


# ------------------------------------------------------------------ recording
#
# The issuance write path runs once per group commit, so it avoids per-row ORM and
# statement-compilation work: every value is validated and every canonical JSON text and
# digest is computed once, before the transaction (and so before the audit head lock); inside
# it, plain driver statements insert pre-built parameter tuples.

_ISSUED_COLUMNS = (
    "serial_hex",
    "spiffe_id",
    "not_before",
    "not_after",
    "fingerprint_sha256",
    "issuer_fingerprint",
    "requester",
    "metadata_json",
    "certificate_pem",
    "issued_at",
    "revoked_at",
    "revocation_reason",
)
_EVENT_COLUMNS = ("seq", "at", "action", "subject", "payload", "prev_hash", "hash")
# Rows per multi-row statement: one driver call (and one GIL release) per chunk, not per row,
# and far below SQLite's and PostgreSQL's limits on bound parameters.
ROWS_PER_STATEMENT = 64


def _positional(dialect: Dialect) -> Dialect:
    """The dialect itself, or a copy of it that writes positional (``%s``) placeholders."""
    if dialect.positional:
        return dialect
    return type(dialect)(paramstyle="format")  # type: ignore[call-arg]


def _compile(statement: ClauseElement, dialect: Dialect, names: Sequence[str]) -> str:
    """The statement's SQL; its positional parameters must come in the order of ``names``."""
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler) or list(compiled.positiontup or ()) != list(names):
        raise RuntimeError("a store statement did not compile to the expected parameters")
    return str(compiled)


def chunks(items: Sequence[_T], size: int = ROWS_PER_STATEMENT) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class IssuanceSql:
    """The issuance write path's statements, compiled once for one dialect.

    They are Core statements on the ORM tables (the head lock is :func:`audit.lock_head`'s:
    ``FOR UPDATE`` on PostgreSQL; on SQLite the ``BEGIN IMMEDIATE`` write transaction holds
    the database lock), compiled with positional placeholders so that rows go to the driver
    as flat tuples, up to :data:`ROWS_PER_STATEMENT` rows per statement. Datetimes go through
    the columns' own bind processors, so the stored values are exactly the ORM's.
    """

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = _positional(dialect)
        self.lock_head = str(
            select(AuditHeadRow.last_seq, AuditHeadRow.last_hash)
            .where(AuditHeadRow.id == AUDIT_HEAD_ID)
            .with_for_update()
            .compile(dialect=self._dialect, compile_kwargs={"literal_binds": True})
        )
        self.update_head = _compile(
            update(AuditHeadRow)
            .values(last_seq=bindparam("last_seq"), last_hash=bindparam("last_hash"))
            .where(AuditHeadRow.id == bindparam("head_id")),
            self._dialect,
            ("last_seq", "last_hash", "head_id"),
        )
        # What engine.py's begin hook emits for a write transaction; PostgreSQL (psycopg)
        # begins implicitly with the first statement.
        self.begin: str | None = "BEGIN IMMEDIATE" if dialect.name == "sqlite" else None
        self.datetime_param = _datetime_param(dialect)
        self._inserts: dict[tuple[str, int], str] = {}

    def insert_certificates(self, rows: int) -> str:
        """INSERT of ``rows`` issued-certificate rows (values in ``_ISSUED_COLUMNS`` order)."""
        return self._insert(IssuedCertificateRow, _ISSUED_COLUMNS, rows)

    def insert_events(self, rows: int) -> str:
        """INSERT of ``rows`` audit events (values in ``_EVENT_COLUMNS`` order)."""
        return self._insert(AuditEventRow, _EVENT_COLUMNS, rows)

    def _insert(self, model: type[Base], columns: tuple[str, ...], rows: int) -> str:
        if not 1 <= rows <= ROWS_PER_STATEMENT:
            raise ValueError(f"rows must be between 1 and {ROWS_PER_STATEMENT}")
        key = (model.__tablename__, rows)
        sql = self._inserts.get(key)
        if sql is None:
            names = [f"{column}_{row}" for row in range(rows) for column in columns]
            params: list[dict[str, Any]] = [
                {column: bindparam(f"{column}_{row}") for column in columns} for row in range(rows)
            ]
            sql = _compile(insert(model).values(params), self._dialect, names)
            self._inserts[key] = sql
        return sql


def _unchanged(value: datetime) -> object:
    return value


def _sqlite_text(value: datetime) -> object:
    """SQLite's stored text of an aware datetime: UTC with microseconds, no offset."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)
    return utc.isoformat(" ", "microseconds")[: -len("+00:00")]


_DATETIME_SAMPLES = (
    datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-5))),
    datetime(1, 1, 1, 0, 0, 0, 5, tzinfo=UTC),
)


def _datetime_param(dialect: Dialect) -> Callable[[datetime], object]:
    """The datetime columns' bind processing for ``dialect``: the column type's own, or, on
    SQLite, a faster formatter that gives the same text (checked here on samples)."""
    column_type = IssuedCertificateRow.issued_at.type
    processor: Callable[[datetime], object] | None = column_type.dialect_impl(
        dialect
    ).bind_processor(dialect)
    if processor is None:
        return _unchanged
    if all(processor(value) == _sqlite_text(value) for value in _DATETIME_SAMPLES):
        return _sqlite_text
    return processor


class PreparedIssuance(NamedTuple):
    """A validated issuance with everything that does not depend on its place in the chain."""

    serial_hex: str
    spiffe_id: str
    issued_at: datetime
    issued_at_param: object
    texts: IssuanceTexts
    row: tuple[object, ...]


def _validated(item: IssuanceInput) -> IssuanceInput:
    """Check every field (raising :class:`InvalidRecordError` naming the first bad one) and
    return ``item`` with UTC datetimes and a plain-dict metadata copy: ``item`` itself when
    nothing needed converting (its metadata is then a plain dict, copied when the texts are
    made)."""
    if not isinstance(item, IssuanceInput):
        raise TypeError(f"expected IssuanceInput, not {type(item).__name__}")
    check_text("serial_hex", item.serial_hex, max_bytes=MAX_SERIAL_BYTES)
    check_text("spiffe_id", item.spiffe_id, max_bytes=MAX_SPIFFE_ID_BYTES)
    not_before = check_aware("not_before", item.not_before)
    not_after = check_aware("not_after", item.not_after)
    check_text("fingerprint_sha256", item.fingerprint_sha256, max_bytes=MAX_FINGERPRINT_BYTES)
    check_text("issuer_fingerprint", item.issuer_fingerprint, max_bytes=MAX_FINGERPRINT_BYTES)
    check_text("requester", item.requester)
    metadata = check_metadata("metadata", item.metadata)
    check_text("certificate_pem", item.certificate_pem)
    issued_at = check_aware("issued_at", item.issued_at)
    if (
        not_before is item.not_before
        and not_after is item.not_after
        and issued_at is item.issued_at
        and type(item.metadata) is dict
    ):
        return item
    return replace(
        item, not_before=not_before, not_after=not_after, issued_at=issued_at, metadata=metadata
    )


def prepare_batch(
    batch: Sequence[IssuanceInput], action: str, sql: IssuanceSql
) -> list[PreparedIssuance]:
    """Validate a batch (as :func:`checked_batch`) and encode each issuance once."""
    check_text("requester_action", action, max_bytes=MAX_ACTION_BYTES)
    checked = [_validated(item) for item in batch]
    seen: set[str] = set()
    for item in checked:
        if item.serial_hex in seen:
            raise ConflictError(
                f"record_issuances: serial {item.serial_hex} appears twice in the batch"
            )
        seen.add(item.serial_hex)
    to_param = sql.datetime_param
    prepared: list[PreparedIssuance] = []
    for item in checked:
        texts = issuance_texts(item)
        issued_at_param = to_param(item.issued_at)
        row = (
            item.serial_hex,
            item.spiffe_id,
            to_param(item.not_before),
            to_param(item.not_after),
            item.fingerprint_sha256,
            item.issuer_fingerprint,
            item.requester,
            texts.metadata_json,
            item.certificate_pem,
            issued_at_param,
            None,
            None,
        )
        prepared.append(
            PreparedIssuance(
                item.serial_hex, item.spiffe_id, item.issued_at, issued_at_param, texts, row
            )
        )
    return prepared


class ChainLink(NamedTuple):
    seq: int
    prev_hash: str
    hash: str


def record(
    connection: PoolProxiedConnection,
    sql: IssuanceSql,
    batch: Sequence[PreparedIssuance],
    action: str,
) -> list[ChainLink]:
    """Insert a prepared batch and one audit event per certificate (head locked first) in
    the caller's transaction on ``connection``; returns each event's place in the chain.

    A serial that is already stored fails the certificate insert (primary key), and so the
    whole transaction; :func:`stored_serials` then tells which serials were the problem.
    """
    if not batch:
        return []
    cursor = connection.cursor()
    try:
        if sql.begin is not None:
            cursor.execute(sql.begin)
        cursor.execute(sql.lock_head)  # serializes issuers
        head = cursor.fetchone()
        if head is None:
            raise AuditChainError("the audit head row is missing; the audit chain cannot grow")
        seq, prev_hash = int(head[0]), str(head[1])
        links: list[ChainLink] = []
        event_values: list[object] = []
        for item in batch:
            seq += 1
            digest = event_hash_of_json(
                prev_hash=prev_hash,
                seq=seq,
                at_iso=item.texts.issued_at_iso,
                action=action,
                subject=item.spiffe_id,
                payload_json=item.texts.payload_json,
            )
            event_values += (
                seq,
                item.issued_at_param,
                action,
                item.spiffe_id,
                item.texts.payload_json,
                prev_hash,
                digest,
            )
            links.append(ChainLink(seq, prev_hash, digest))
            prev_hash = digest
        width = len(_EVENT_COLUMNS)
        for values in chunks(event_values, width * ROWS_PER_STATEMENT):
            cursor.execute(sql.insert_events(len(values) // width), values)
        cursor.execute(sql.update_head, (seq, prev_hash, AUDIT_HEAD_ID))
        for rows in chunks(batch):
            flat = [value for item in rows for value in item.row]
            cursor.execute(sql.insert_certificates(len(rows)), flat)
    finally:
        cursor.close()
    return links


def stored_serials(session: Session, serials: Sequence[str]) -> list[str]:
    """Which of ``serials`` are already stored, sorted."""
    found: list[str] = []
    for part in chunks(serials):
        found.extend(
            session.execute(
                select(IssuedCertificateRow.serial_hex).where(
                    IssuedCertificateRow.serial_hex.in_(part)
                )
            ).scalars()
        )
    return sorted(found)


def already_recorded(serials: Sequence[str]) -> ConflictError:
    shown = ", ".join(serials[:5]) + (" ..." if len(serials) > 5 else "")
    return ConflictError(f"record_issuances: serial already recorded: {shown}")


def issued_events(
    batch: Sequence[PreparedIssuance], links: Sequence[ChainLink], action: str
) -> list[AuditEvent]:
    """The audit events :func:`record` stored, as records."""
    return [
        AuditEvent(
            seq=link.seq,
            at=item.issued_at,
            action=action,
            subject=item.spiffe_id,
            payload=dict(item.texts.payload),
            prev_hash=link.prev_hash,
            hash=link.hash,
        )
        for item, link in zip(batch, links, strict=True)
    ]


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


def count_unexpired(
    session: Session, issuer_fingerprints: Sequence[str], *, expiring_after: datetime, sample: int
) -> CertificateCount:
    """Unrevoked certificates of these issuers with ``not_after`` after ``expiring_after``
    (a range scan of ``ix_issued_certificates_issuer_not_after`` per issuer)."""
    row = IssuedCertificateRow
    where = (
        row.issuer_fingerprint.in_(list(issuer_fingerprints)),
        row.not_after > expiring_after,
        row.revoked_at.is_(None),
    )
    count = session.execute(select(func.count()).select_from(row).where(*where)).scalar_one()
    latest = session.execute(
        select(row.serial_hex, row.not_after)
        .where(*where)
        .order_by(row.not_after.desc(), row.serial_hex.desc())
        .limit(sample)
    ).all()
    return CertificateCount(
        count=int(count),
        last_not_after=latest[0][1] if latest else None,
        latest_serials=tuple(serial for serial, _ in latest),
    )


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
