"""The repository: Citadel's only door to the database.

Every public method is one transaction. Writes go through :meth:`Repository._write_tx`,
reads through :meth:`Repository._read_tx`; both hand a session to a private helper (in
:mod:`~citadel.store.authorities`, :mod:`~citadel.store.certificates`,
:mod:`~citadel.store.audit`, :mod:`~citadel.store.join_tokens`, :mod:`~citadel.store.locks`,
:mod:`~citadel.store.entries`)
and map database failures to store errors in one place
(:func:`~citadel.store.db_errors.translate_db_error`). Input is validated before a
transaction opens, so bad input never takes a database lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import Engine, text
from sqlalchemy.engine.interfaces import DBAPIModule
from sqlalchemy.orm import Session, sessionmaker

from citadel.identity.registration import RegistrationEntry
from citadel.store import (
    audit,
    audit_verify,
    authorities,
    certificates,
    entries,
    join_tokens,
    locks,
)
from citadel.store.audit_chain import RESERVED_PAYLOAD_KEY, canonical_json
from citadel.store.db_errors import translate_db_error
from citadel.store.engine import WRITE_OPTION, EngineOptions, create_store_engine
from citadel.store.entry_checks import checked_entry, checked_revision
from citadel.store.entry_records import EntryChanges, EntryTombstone
from citadel.store.errors import (
    ConflictError,
    InvalidRecordError,
    NotFoundError,
    StoreError,
    TokenRejectedError,
)
from citadel.store.migrate import current_revision, head_revision, upgrade_to_head
from citadel.store.models import MAX_ENTRY_ID_BYTES
from citadel.store.records import (
    AUTHORITY_STATES,
    AuditEvent,
    AuditVerification,
    AuthorityRecord,
    CertificateCount,
    IssuanceInput,
    IssuedCertificateRecord,
    JoinTokenRecord,
)
from citadel.store.validation import (
    MAX_ACTION_BYTES,
    MAX_FINGERPRINT_BYTES,
    MAX_NAME_BYTES,
    MAX_SERIAL_BYTES,
    MAX_SPIFFE_ID_BYTES,
    MAX_TOKEN_HASH_BYTES,
    check_aware,
    check_choice,
    check_optional_aware,
    check_positive,
    check_text,
)

__all__ = ["Repository"]

_T = TypeVar("_T")
_DEFAULT_CONFLICT = "the change conflicts with stored data"


def _lookup_key(value: object, max_bytes: int) -> str | None:
    """A lookup key the database can compare, or None when no row can have it."""
    if not isinstance(value, str):
        raise TypeError(f"lookup key must be a string, not {type(value).__name__}")
    try:
        return check_text("key", value, max_bytes=max_bytes)
    except ValueError:
        return None


def _checked_limit(name: str, value: object, *, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int")
    if not 1 <= value <= maximum:
        raise ValueError(f"{name} must be between 1 and {maximum}")
    return value


def _checked_seq(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("after_seq must be an int")
    if value < 0:
        raise ValueError("after_seq must not be negative")
    return value


class Repository:
    """Persistence for authorities, issued certificates, the audit chain, join tokens,
    registration entries and locks, on SQLite or PostgreSQL. Thread-safe; share one
    instance per process.

    Create with :meth:`open`; release with :meth:`close` (or use it as a context manager).
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._dbapi: DBAPIModule = engine.dialect.loaded_dbapi
        self._writer = sessionmaker(
            bind=engine.execution_options(**{WRITE_OPTION: True}), expire_on_commit=False
        )
        self._issuance_sql = certificates.IssuanceSql(engine.dialect)
        self._reader = sessionmaker(bind=engine, expire_on_commit=False)
        snapshot_engine = (
            engine.execution_options(isolation_level="REPEATABLE READ")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._snapshot_reader = sessionmaker(bind=snapshot_engine, expire_on_commit=False)

    # ----------------------------------------------------------------- lifecycle

    @classmethod
    def open(
        cls,
        url: str,
        *,
        auto_upgrade: bool = True,
        options: EngineOptions | None = None,
    ) -> Repository:
        """Connect to ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

        Args:
            url: the database URL; ``postgresql://`` means psycopg 3.
            auto_upgrade: run pending migrations now (a fresh database gets the whole
                schema). When False, the schema must already be at the newest revision.
            options: timeouts; see :class:`~citadel.store.engine.EngineOptions`.

        Raises:
            ValueError: the URL is malformed or names an unsupported backend.
            StoreUnavailableError: the database cannot be reached or written.
            StoreError: the schema is not current (auto_upgrade=False) or cannot be migrated.
        """
        repository = cls(create_store_engine(url, options))
        try:
            if auto_upgrade:
                repository.upgrade()
            else:
                repository._require_current_schema()
        except BaseException:
            repository.close()
            raise
        return repository

    def upgrade(self) -> None:
        """Apply every pending Alembic migration (safe to run from several replicas)."""
        self._guarded("upgrade", lambda: upgrade_to_head(self._engine), _DEFAULT_CONFLICT)

    def _require_current_schema(self) -> None:
        head = head_revision()
        current = self._guarded("open", lambda: current_revision(self._engine), _DEFAULT_CONFLICT)
        if current != head:
            raise StoreError(
                f"the database schema is at revision {current or 'none'} but this Citadel "
                f"needs {head}; run the migrations"
            )

    def close(self) -> None:
        """Close every pooled connection. The repository must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def backend(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._engine.dialect.name

    def ping(self) -> None:
        """Raise :class:`StoreUnavailableError` unless the database answers a query."""
        self._read_tx("ping", lambda session: session.execute(text("SELECT 1")).scalar_one())

    # ---------------------------------------------------------- transactions

    def _guarded(self, operation: str, work: Callable[[], _T], conflict: str) -> _T:
        try:
            return work()
        except StoreError:
            raise
        except Exception as exc:
            translated = translate_db_error(
                exc, operation=operation, conflict=conflict, dbapi=self._dbapi
            )
            if translated is None:
                raise
            raise translated from exc

    def _in_session(
        self,
        sessions: sessionmaker[Session],
        operation: str,
        work: Callable[[Session], _T],
        conflict: str,
    ) -> _T:
        def run() -> _T:
            with sessions.begin() as session:
                return work(session)

        return self._guarded(operation, run, conflict)

    def _write_tx(
        self, operation: str, work: Callable[[Session], _T], *, conflict: str = _DEFAULT_CONFLICT
    ) -> _T:
        return self._in_session(self._writer, operation, work, conflict)

    def _read_tx(self, operation: str, work: Callable[[Session], _T]) -> _T:
        return self._in_session(self._reader, operation, work, _DEFAULT_CONFLICT)

    # ------------------------------------------------------------ authorities

    def save_authority(self, record: AuthorityRecord) -> AuthorityRecord:
        """Insert a new authority.

        Raises:
            InvalidRecordError: a field is invalid (kind, state, naive datetime, ...).
            NotFoundError: ``parent_id`` names no stored authority.
            ConflictError: an authority with this id exists.
        """
        checked = authorities.checked_authority(record)
        return self._write_tx(
            "save_authority",
            lambda s: authorities.save(s, checked),
            conflict=f"an authority with id {checked.id!r} already exists",
        )

    def get_authority(self, authority_id: str) -> AuthorityRecord:
        """Raises: NotFoundError."""
        key = _lookup_key(authority_id, MAX_NAME_BYTES)
        if key is None:
            raise NotFoundError(f"no authority with id {authority_id!r:.80}")
        return self._read_tx("get_authority", lambda s: authorities.get(s, key))

    def list_authorities(
        self, kind: str | None = None, states: Collection[str] | None = None
    ) -> list[AuthorityRecord]:
        """Authorities, oldest first, optionally of one kind and in some states."""
        if states is not None and isinstance(states, str):
            raise TypeError("states must be a collection of strings, not a string")
        return self._read_tx(
            "list_authorities", lambda s: authorities.list_filtered(s, kind=kind, states=states)
        )

    def set_authority_state(self, authority_id: str, state: str, at: datetime) -> AuthorityRecord:
        """Move an authority to ``state`` (see ``AUTHORITY_STATE_TRANSITIONS``).

        Raises:
            InvalidRecordError: unknown state or naive ``at``.
            NotFoundError: no such authority.
            ConflictError: the transition is not allowed (e.g. out of ``revoked``).
        """
        check_choice("state", state, AUTHORITY_STATES)
        when = check_aware("at", at)
        key = _lookup_key(authority_id, MAX_NAME_BYTES)
        if key is None:
            raise NotFoundError(f"no authority with id {authority_id!r:.80}")
        return self._write_tx(
            "set_authority_state", lambda s: authorities.set_state(s, key, state, when)
        )

    # ------------------------------------------------------------- issuance

    def record_issuances(
        self, batch: Sequence[IssuanceInput], *, requester_action: str = "issue"
    ) -> list[AuditEvent]:
        """Store a batch of issued certificates and one audit event each, in one transaction.

        All or nothing: if any serial already exists nothing is stored.

        Raises:
            InvalidRecordError: a field is invalid.
            ConflictError: a serial is already stored or repeats within the batch.
        """
        sql = self._issuance_sql
        prepared = certificates.prepare_batch(batch, requester_action, sql)
        if not prepared:
            return []

        def write() -> list[certificates.ChainLink]:
            # One plain driver transaction on a pooled connection, not a Session: this runs
            # once per group commit, and nothing here needs the ORM.
            connection = self._engine.raw_connection()
            try:
                links = certificates.record(connection, sql, prepared, requester_action)
                connection.commit()
            except BaseException:
                with contextlib.suppress(Exception):  # the pool discards a broken connection
                    connection.rollback()
                raise
            finally:
                connection.close()
            return links

        try:
            links = self._guarded(
                "record_issuances",
                write,
                "the batch conflicts with stored certificates or audit events",
            )
        except ConflictError as exc:
            # Name the serials that were already stored (the batch was rolled back whole).
            serials = [item.serial_hex for item in prepared]
            try:
                stored = self._read_tx(
                    "record_issuances", lambda s: certificates.stored_serials(s, serials)
                )
            except StoreError:  # cannot tell now; the generic conflict stands
                stored = []
            if stored:
                raise certificates.already_recorded(stored) from exc
            raise
        return certificates.issued_events(prepared, links, requester_action)

    def get_certificate(self, serial_hex: str) -> IssuedCertificateRecord:
        """Raises: NotFoundError."""
        key = _lookup_key(serial_hex, MAX_SERIAL_BYTES)
        if key is None:
            raise NotFoundError(f"no certificate with serial {serial_hex!r:.80}")
        return self._read_tx("get_certificate", lambda s: certificates.get(s, key))

    def list_certificates(
        self,
        *,
        spiffe_id_prefix: str | None = None,
        expiring_before: datetime | None = None,
        revoked: bool | None = None,
        limit: int = 1000,
    ) -> list[IssuedCertificateRecord]:
        """Certificates ordered by ``not_after`` then serial.

        Args:
            spiffe_id_prefix: literal prefix of the SPIFFE ID (``%`` and ``_`` match
                themselves).
            expiring_before: only those with ``not_after`` strictly before this.
            revoked: True for revoked only, False for unrevoked only.
            limit: 1 to 10000.
        """
        prefix = (
            None
            if spiffe_id_prefix is None
            else check_text("spiffe_id_prefix", spiffe_id_prefix, max_bytes=MAX_SPIFFE_ID_BYTES)
        )
        before = check_optional_aware("expiring_before", expiring_before)
        count = _checked_limit("limit", limit, maximum=certificates.MAX_LIST_LIMIT)
        return self._read_tx(
            "list_certificates",
            lambda s: certificates.list_filtered(
                s, spiffe_id_prefix=prefix, expiring_before=before, revoked=revoked, limit=count
            ),
        )

    def count_unexpired_certificates(
        self, *, issuer_fingerprints: Sequence[str], expiring_after: datetime, sample: int = 3
    ) -> CertificateCount:
        """Unrevoked certificates signed by any of ``issuer_fingerprints`` that expire after
        ``expiring_after`` (indexed by issuer and expiry: the cost does not grow with the
        expired or other issuers' certificates in the store).

        Args:
            sample: how many serials of those expiring last to return (1 to 100).
        """
        after = check_aware("expiring_after", expiring_after)
        if isinstance(issuer_fingerprints, str):
            raise TypeError("issuer_fingerprints must be a sequence of fingerprints")
        keys = [
            key
            for key in (_lookup_key(f, MAX_FINGERPRINT_BYTES) for f in issuer_fingerprints)
            if key is not None
        ]
        count = _checked_limit("sample", sample, maximum=100)
        if not keys:
            return CertificateCount(count=0, last_not_after=None, latest_serials=())
        return self._read_tx(
            "count_unexpired_certificates",
            lambda s: certificates.count_unexpired(
                s, sorted(set(keys)), expiring_after=after, sample=count
            ),
        )

    def revoke_certificate(
        self, serial_hex: str, reason: str, at: datetime
    ) -> IssuedCertificateRecord:
        """Revoke a certificate and append a ``revoke`` audit event, atomically.

        Raises:
            NotFoundError: no certificate with this serial.
            ConflictError: it is already revoked.
        """
        why = check_text("reason", reason)
        when = check_aware("at", at)
        key = _lookup_key(serial_hex, MAX_SERIAL_BYTES)
        if key is None:
            raise NotFoundError(f"no certificate with serial {serial_hex!r:.80}")
        return self._write_tx(
            "revoke_certificate", lambda s: certificates.revoke(s, key, why, when)
        )

    def list_revocations(
        self, issuer_fingerprint: str | None = None
    ) -> list[IssuedCertificateRecord]:
        """Revoked certificates (expired ones included), oldest revocation first."""
        if issuer_fingerprint is not None:
            key = _lookup_key(issuer_fingerprint, MAX_FINGERPRINT_BYTES)
            if key is None:
                return []
            issuer_fingerprint = key
        issuer = issuer_fingerprint
        return self._read_tx("list_revocations", lambda s: certificates.list_revocations(s, issuer))

    # ---------------------------------------------------------------- audit

    def append_audit(
        self, action: str, subject: str, payload: Mapping[str, Any], at: datetime
    ) -> AuditEvent:
        """Append one event (rotation steps, admin actions) to the chain.

        Raises:
            InvalidRecordError: bad action/subject text, a naive ``at``, or a payload that
                uses the reserved key ``store_record``.
            TypeError, ValueError: the payload is not JSON (sets, objects, NaN).
        """
        name = check_text("action", action, max_bytes=MAX_ACTION_BYTES)
        about = check_text("subject", subject)
        when = check_aware("at", at)
        if not isinstance(payload, Mapping):
            raise TypeError("payload must be a mapping")
        if RESERVED_PAYLOAD_KEY in payload:
            raise InvalidRecordError(
                f"payload key {RESERVED_PAYLOAD_KEY!r} is reserved for the store's own events"
            )
        entry = audit.AuditEntry(at=when, action=name, subject=about, payload=dict(payload))
        canonical_json(entry.payload)  # fail on non-JSON before taking the lock
        return self._write_tx("append_audit", lambda s: audit.append(s, [entry])[0])

    def list_audit(self, after_seq: int = 0, limit: int = 1000) -> list[AuditEvent]:
        """Events with ``seq > after_seq``, ascending; page with the last seq seen."""
        start = _checked_seq(after_seq)
        count = _checked_limit("limit", limit, maximum=certificates.MAX_LIST_LIMIT)
        return self._read_tx(
            "list_audit", lambda s: audit.list_events(s, after_seq=start, limit=count)
        )

    def verify_audit_chain(self) -> AuditVerification:
        """Recompute every hash and link, check the head, and cross-check the certificate
        rows against their issuance and revocation events, in one consistent snapshot."""
        return self._in_session(
            self._snapshot_reader, "verify_audit_chain", audit_verify.verify, _DEFAULT_CONFLICT
        )

    # ---------------------------------------------------------- join tokens

    def create_join_token(
        self, token_hash: str, spiffe_id: str, created_at: datetime, expires_at: datetime
    ) -> JoinTokenRecord:
        """Store a join token's hash (never the token).

        Raises:
            InvalidRecordError: bad text, naive datetimes, or ``expires_at <= created_at``.
            ConflictError: the hash is already stored.
        """
        record = JoinTokenRecord(
            token_hash=check_text("token_hash", token_hash, max_bytes=MAX_TOKEN_HASH_BYTES),
            spiffe_id=check_text("spiffe_id", spiffe_id, max_bytes=MAX_SPIFFE_ID_BYTES),
            created_at=check_aware("created_at", created_at),
            expires_at=check_aware("expires_at", expires_at),
        )
        if record.expires_at <= record.created_at:
            raise InvalidRecordError("expires_at must be later than created_at")
        return self._write_tx(
            "create_join_token",
            lambda s: join_tokens.create(s, record),
            conflict="a join token with this hash already exists",
        )

    def consume_join_token(self, token_hash: str, now: datetime) -> str:
        """Use a join token once; returns the SPIFFE ID it was issued for.

        Raises:
            TokenRejectedError: unknown, already used, or expired (``now >= expires_at``).
        """
        when = check_aware("now", now)
        key = _lookup_key(token_hash, MAX_TOKEN_HASH_BYTES)
        if key is None:
            raise TokenRejectedError("join token is unknown")
        return self._write_tx("consume_join_token", lambda s: join_tokens.consume(s, key, when))

    # ------------------------------------------------------ registration entries

    def create_entry(self, entry: RegistrationEntry, at: datetime) -> RegistrationEntry:
        """Store a new entry; returns it with the revision of its creation.

        Raises:
            InvalidRecordError: a value cannot be stored (fractional TTL, NUL in the hint).
            ConflictError: the id is taken (also by a deleted entry), or a live entry
                already has the same parent, SPIFFE ID and selectors.
        """
        checked = checked_entry(entry)
        when = check_aware("at", at)
        return self._write_tx(
            "create_entry",
            lambda s: entries.create(s, checked, when),
            conflict="the entry conflicts with a stored entry",
        )

    def get_entry(self, entry_id: str) -> RegistrationEntry:
        """A live entry. Raises: NotFoundError (also for a deleted one)."""
        key = _lookup_key(entry_id, MAX_ENTRY_ID_BYTES)
        if key is None:
            raise NotFoundError(f"no registration entry with id {entry_id!r:.80}")
        return self._read_tx("get_entry", lambda s: entries.get(s, key))

    def list_entries(
        self, parent: str | None = None, since_revision: int | None = None
    ) -> list[RegistrationEntry]:
        """Live entries, oldest first; only children of ``parent`` (a SPIFFE ID string)
        and only those changed after ``since_revision`` when given."""
        if parent is not None:
            parent = _lookup_key(parent, MAX_SPIFFE_ID_BYTES)
            if parent is None:
                return []
        since = None if since_revision is None else checked_revision(since_revision)
        return self._read_tx(
            "list_entries",
            lambda s: entries.list_live(s, parent_id=parent, since_revision=since),
        )

    def update_entry(self, entry: RegistrationEntry, at: datetime) -> RegistrationEntry:
        """Replace the live entry with ``entry.entry_id`` by ``entry`` (new revision).

        Raises:
            NotFoundError: no live entry with that id.
            ConflictError: another live entry has the same parent, SPIFFE ID and selectors.
            InvalidRecordError: a value cannot be stored.
        """
        checked = checked_entry(entry)
        when = check_aware("at", at)
        return self._write_tx(
            "update_entry",
            lambda s: entries.update(s, checked, when),
            conflict="the entry conflicts with a stored entry",
        )

    def delete_entry(self, entry_id: str, at: datetime) -> EntryTombstone:
        """Delete a live entry, leaving a tombstone with the revision of the deletion.

        Raises:
            NotFoundError: no live entry with that id.
        """
        when = check_aware("at", at)
        key = _lookup_key(entry_id, MAX_ENTRY_ID_BYTES)
        if key is None:
            raise NotFoundError(f"no registration entry with id {entry_id!r:.80}")
        return self._write_tx("delete_entry", lambda s: entries.delete(s, key, when))

    def entry_revision(self) -> int:
        """The revision of the last entry change (0 before the first)."""
        return self._read_tx("entry_revision", entries.current_revision)

    def entry_changes(self, since_revision: int) -> EntryChanges:
        """Entries changed, deleted and moved after ``since_revision``, in one snapshot."""
        since = checked_revision(since_revision)
        return self._in_session(
            self._snapshot_reader,
            "entry_changes",
            lambda s: entries.changes_since(s, since),
            _DEFAULT_CONFLICT,
        )

    # ---------------------------------------------------------------- locks

    def try_acquire_lock(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool:
        """Take or renew the named lock until ``now + ttl``; False if another holder has it."""
        lock = check_text("name", name, max_bytes=MAX_NAME_BYTES)
        who = check_text("holder", holder, max_bytes=MAX_NAME_BYTES)
        span = check_positive("ttl", ttl)
        when = check_aware("now", now)
        return self._write_tx(
            "try_acquire_lock", lambda s: locks.try_acquire(s, lock, who, span, when)
        )

    def release_lock(self, name: str, holder: str) -> bool:
        """Release the named lock if ``holder`` has it; True when something was released."""
        lock = _lookup_key(name, MAX_NAME_BYTES)
        who = _lookup_key(holder, MAX_NAME_BYTES)
        if lock is None or who is None:
            return False
        return self._write_tx("release_lock", lambda s: locks.release(s, lock, who))
