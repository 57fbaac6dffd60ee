"""ORM models. Private to :mod:`citadel.store`: rows never leave the package.

The schema itself is created only by Alembic (``migrations/versions``); a test checks that
the migrations and these models agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, MetaData, String, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from citadel.store.validation import (
    MAX_ACTION_BYTES,
    MAX_FINGERPRINT_BYTES,
    MAX_NAME_BYTES,
    MAX_SERIAL_BYTES,
    MAX_SPIFFE_ID_BYTES,
    MAX_TOKEN_HASH_BYTES,
)

__all__ = [
    "AUDIT_HEAD_ID",
    "MAX_ENTRY_ID_BYTES",
    "REGISTRATION_HEAD_ID",
    "AuditEventRow",
    "AuditHeadRow",
    "AuthorityRow",
    "Base",
    "IssuedCertificateRow",
    "JoinTokenRow",
    "LockRow",
    "RegistrationEntryRow",
    "RegistrationHeadRow",
    "RegistrationTreeChangeRow",
    "UtcDateTime",
]

AUDIT_HEAD_ID: Final = 1
REGISTRATION_HEAD_ID: Final = 1
MAX_ENTRY_ID_BYTES: Final = 128  # RegistrationEntry ids are ASCII, at most 128 characters

NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored as UTC and always read back as aware UTC.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text, which sorts correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AuthorityRow(Base):
    __tablename__ = "authorities"

    id: Mapped[str] = mapped_column(String(MAX_NAME_BYTES), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    certificate_pem: Mapped[str] = mapped_column(Text)
    key_ref: Mapped[str] = mapped_column(Text)
    serial_hex: Mapped[str] = mapped_column(String(MAX_SERIAL_BYTES))
    fingerprint_sha256: Mapped[str] = mapped_column(String(MAX_FINGERPRINT_BYTES))
    parent_id: Mapped[str | None] = mapped_column(
        String(MAX_NAME_BYTES), ForeignKey("authorities.id")
    )
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class IssuedCertificateRow(Base):
    __tablename__ = "issued_certificates"
    __table_args__ = (
        Index("ix_issued_certificates_spiffe_id", "spiffe_id"),
        Index("ix_issued_certificates_not_after", "not_after"),
        Index("ix_issued_certificates_revoked_at", "revoked_at"),
        # Leaves still valid under an authority (may it be retired?): migration 0003.
        Index("ix_issued_certificates_issuer_not_after", "issuer_fingerprint", "not_after"),
    )

    serial_hex: Mapped[str] = mapped_column(String(MAX_SERIAL_BYTES), primary_key=True)
    spiffe_id: Mapped[str] = mapped_column(String(MAX_SPIFFE_ID_BYTES))
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime)
    fingerprint_sha256: Mapped[str] = mapped_column(String(MAX_FINGERPRINT_BYTES))
    issuer_fingerprint: Mapped[str] = mapped_column(String(MAX_FINGERPRINT_BYTES))
    requester: Mapped[str] = mapped_column(Text)
    metadata_json: Mapped[str] = mapped_column(Text)
    certificate_pem: Mapped[str] = mapped_column(Text)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(Text)


class AuditEventRow(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    action: Mapped[str] = mapped_column(String(MAX_ACTION_BYTES))
    subject: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """One row (id 1): the last appended seq and hash. Appends lock it to serialize."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))


class JoinTokenRow(Base):
    __tablename__ = "join_tokens"

    token_hash: Mapped[str] = mapped_column(String(MAX_TOKEN_HASH_BYTES), primary_key=True)
    spiffe_id: Mapped[str] = mapped_column(String(MAX_SPIFFE_ID_BYTES))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LockRow(Base):
    __tablename__ = "locks"

    name: Mapped[str] = mapped_column(String(MAX_NAME_BYTES), primary_key=True)
    holder: Mapped[str] = mapped_column(String(MAX_NAME_BYTES))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RegistrationEntryRow(Base):
    """A registration entry; a deleted one stays as a tombstone (``deleted_at`` set).

    ``match_key`` (SHA-256 of parent, SPIFFE ID and sorted selectors) is unique among live
    entries, so the same registration cannot exist twice; tombstones have none.
    """

    __tablename__ = "registration_entries"
    __table_args__ = (
        Index("ix_registration_entries_revision", "revision"),
        Index("ix_registration_entries_parent_id", "parent_id"),
        Index("ix_registration_entries_match_key", "match_key", unique=True),
    )

    entry_id: Mapped[str] = mapped_column(String(MAX_ENTRY_ID_BYTES), primary_key=True)
    spiffe_id: Mapped[str] = mapped_column(String(MAX_SPIFFE_ID_BYTES))
    parent_id: Mapped[str] = mapped_column(String(MAX_SPIFFE_ID_BYTES))
    selectors_json: Mapped[str] = mapped_column(Text)
    ttl_seconds: Mapped[int | None] = mapped_column(BigInteger)
    dns_names_json: Mapped[str] = mapped_column(Text)
    hint: Mapped[str] = mapped_column(Text)
    match_key: Mapped[str | None] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class RegistrationTreeChangeRow(Base):
    """A SPIFFE ID whose children may have moved at ``revision`` (an entry with that ID was
    created, deleted, renamed or re-parented): agents re-check the entries below it."""

    __tablename__ = "registration_tree_changes"

    revision: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    spiffe_id: Mapped[str] = mapped_column(String(MAX_SPIFFE_ID_BYTES), primary_key=True)


class RegistrationHeadRow(Base):
    """One row (id 1): the last registration revision. Changes lock it to serialize."""

    __tablename__ = "registration_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_revision: Mapped[int] = mapped_column(BigInteger)
