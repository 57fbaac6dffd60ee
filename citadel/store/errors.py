"""Errors of the persistence layer.

Database and driver exceptions never leave :mod:`citadel.store`; the repository turns them
into these, in one place (:func:`citadel.store.db_errors.translate_db_error`)::

    StoreError                  "store_error"        any other database failure
    ├── StoreUnavailableError   "store_unavailable"  down, unreachable, locked, disk full, read-only
    ├── NotFoundError           "not_found"          no row with that key
    ├── ConflictError           "conflict"           already exists, already revoked, bad transition
    ├── AuditChainError         "audit_broken"       the audit chain cannot be appended to
    ├── TokenRejectedError      "token_rejected"     join token unknown, already used or expired
    └── InvalidRecordError      "invalid_record"     a value the store refuses (also a ValueError)
"""

from __future__ import annotations

from citadel.errors import CitadelError

__all__ = [
    "AuditChainError",
    "ConflictError",
    "InvalidRecordError",
    "NotFoundError",
    "StoreError",
    "StoreUnavailableError",
    "TokenRejectedError",
]


class StoreError(CitadelError):
    """The database failed in a way none of the subclasses describes."""

    kind = "store_error"


class StoreUnavailableError(StoreError):
    """The database cannot be used right now: down, unreachable, locked, full or read-only.

    Retrying later may succeed; no data was changed by the failed call.
    """

    kind = "store_unavailable"


class NotFoundError(StoreError):
    """No row has the requested key (serial, authority id)."""

    kind = "not_found"


class ConflictError(StoreError):
    """The change contradicts stored data: a duplicate key, a second revocation, a state
    transition that is not allowed."""

    kind = "conflict"


class AuditChainError(StoreError):
    """The audit chain's bookkeeping is missing or inconsistent, so nothing can be appended."""

    kind = "audit_broken"


class TokenRejectedError(StoreError):
    """A join token is unknown, already used, or expired. The message says which; callers
    should not echo it to the presenter of the token."""

    kind = "token_rejected"


class InvalidRecordError(StoreError, ValueError):
    """A value cannot be stored as given: a naive datetime, a NUL character, an over-long key,
    an unknown authority kind or state. Nothing was written."""

    kind = "invalid_record"
