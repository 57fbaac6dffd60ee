"""The one place where database and driver exceptions become store errors."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import DBAPIModule

from citadel.store.errors import ConflictError, StoreError, StoreUnavailableError

__all__ = ["translate_db_error"]

_UNAVAILABLE = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection became free in time
    sa_exc.DisconnectionError,
)


def _reason(exc: BaseException) -> str:
    """A short description of the driver's complaint: first line only, never parameters."""
    orig = getattr(exc, "orig", None)
    source = orig if isinstance(orig, BaseException) else exc
    text = str(source).strip().splitlines()
    first = text[0] if text else type(source).__name__
    return first[:200]


def translate_db_error(
    exc: BaseException, *, operation: str, conflict: str, dbapi: DBAPIModule | None = None
) -> StoreError | None:
    """Map a database exception to a :class:`StoreError`, or None if it is not one.

    Args:
        exc: the exception raised inside a repository transaction.
        operation: the repository method, named in the message.
        conflict: what an integrity violation means for this operation.
        dbapi: the driver module, so raw driver errors (raised outside SQLAlchemy's
            wrapping, e.g. from connect hooks) are recognised too.
    """
    if isinstance(exc, StoreError):
        return exc
    if isinstance(exc, sa_exc.IntegrityError):
        return ConflictError(f"{operation}: {conflict}")
    if isinstance(exc, _UNAVAILABLE) or (
        isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated
    ):
        return StoreUnavailableError(f"{operation}: database unavailable: {_reason(exc)}")
    if isinstance(exc, sa_exc.SQLAlchemyError):
        return StoreError(f"{operation}: database error: {_reason(exc)}")
    if dbapi is not None:
        if isinstance(exc, dbapi.IntegrityError):
            return ConflictError(f"{operation}: {conflict}")
        if isinstance(exc, (dbapi.OperationalError, dbapi.InterfaceError)):
            return StoreUnavailableError(f"{operation}: database unavailable: {_reason(exc)}")
        if isinstance(exc, dbapi.Error):
            return StoreError(f"{operation}: database error: {_reason(exc)}")
    return None
