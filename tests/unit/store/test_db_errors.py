"""Database failures become store errors in one place, without leaking parameters."""

from __future__ import annotations

import sqlite3
from typing import cast

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine.interfaces import DBAPIModule

from citadel.store.db_errors import translate_db_error
from citadel.store.errors import (
    ConflictError,
    NotFoundError,
    StoreError,
    StoreUnavailableError,
)

SQLITE_DBAPI = cast(DBAPIModule, sqlite3)


def _wrap(kind: type[sa_exc.DBAPIError], orig: Exception) -> sa_exc.DBAPIError:
    return kind("INSERT INTO t VALUES (?)", ("secret-parameter",), orig)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_wrap(sa_exc.IntegrityError, sqlite3.IntegrityError("UNIQUE failed")), ConflictError),
        (
            _wrap(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")),
            StoreUnavailableError,
        ),
        (_wrap(sa_exc.InterfaceError, sqlite3.InterfaceError("closed")), StoreUnavailableError),
        (sa_exc.TimeoutError("QueuePool limit reached"), StoreUnavailableError),
        (_wrap(sa_exc.DataError, sqlite3.DataError("bad value")), StoreError),
        (_wrap(sa_exc.ProgrammingError, sqlite3.ProgrammingError("syntax")), StoreError),
    ],
    ids=["integrity", "operational", "interface", "pool-timeout", "data", "programming"],
)
def test_sqlalchemy_errors_map_to_store_errors(error: Exception, expected: type) -> None:
    translated = translate_db_error(error, operation="op", conflict="it exists")
    assert type(translated) is expected


def test_unavailable_message_names_the_operation_and_the_driver_complaint_only() -> None:
    error = _wrap(sa_exc.OperationalError, sqlite3.OperationalError("database is locked"))
    translated = translate_db_error(error, operation="record_issuances", conflict="x")
    assert str(translated) == "record_issuances: database unavailable: database is locked"
    assert "secret-parameter" not in str(translated)


def test_conflict_message_is_the_operation_specific_one() -> None:
    error = _wrap(sa_exc.IntegrityError, sqlite3.IntegrityError("UNIQUE constraint failed: t.k"))
    translated = translate_db_error(error, operation="save_authority", conflict="id taken")
    assert str(translated) == "save_authority: id taken"


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (sqlite3.OperationalError("unable to open database file"), StoreUnavailableError),
        (sqlite3.IntegrityError("UNIQUE"), ConflictError),
        (sqlite3.DatabaseError("file is not a database"), StoreError),
    ],
    ids=["operational", "integrity", "other"],
)
def test_raw_driver_errors_are_recognised_through_the_dbapi_module(
    error: Exception, expected: type
) -> None:
    translated = translate_db_error(error, operation="op", conflict="c", dbapi=SQLITE_DBAPI)
    assert type(translated) is expected


def test_store_errors_pass_through_unchanged() -> None:
    error = NotFoundError("no such serial")
    assert translate_db_error(error, operation="op", conflict="c") is error


def test_unrelated_exceptions_are_not_translated() -> None:
    assert (
        translate_db_error(KeyError("x"), operation="op", conflict="c", dbapi=SQLITE_DBAPI) is None
    )
