"""Persistence behind a repository (SQLAlchemy 2 on SQLite or PostgreSQL, Alembic migrations).

Callers use :class:`Repository` and the records; ORM rows never leave this package::

    repo = Repository.open("sqlite:////var/lib/citadel/citadel.db")
    events = repo.record_issuances([IssuanceInput(...), ...])
    assert repo.verify_audit_chain().ok
"""

from __future__ import annotations

from citadel.store.engine import EngineOptions
from citadel.store.entry_records import EntryChanges, EntryTombstone
from citadel.store.errors import (
    AuditChainError,
    ConflictError,
    InvalidRecordError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
    TokenRejectedError,
)
from citadel.store.records import (
    AUTHORITY_KINDS,
    AUTHORITY_STATE_TRANSITIONS,
    AUTHORITY_STATES,
    AuditEvent,
    AuditVerification,
    AuthorityRecord,
    IssuanceInput,
    IssuedCertificateRecord,
    JoinTokenRecord,
)
from citadel.store.repository import Repository

__all__ = [
    "AUTHORITY_KINDS",
    "AUTHORITY_STATES",
    "AUTHORITY_STATE_TRANSITIONS",
    "AuditChainError",
    "AuditEvent",
    "AuditVerification",
    "AuthorityRecord",
    "ConflictError",
    "EngineOptions",
    "EntryChanges",
    "EntryTombstone",
    "InvalidRecordError",
    "IssuanceInput",
    "IssuedCertificateRecord",
    "JoinTokenRecord",
    "NotFoundError",
    "Repository",
    "StoreError",
    "StoreUnavailableError",
    "TokenRejectedError",
]
