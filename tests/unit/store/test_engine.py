"""Engine set-up: URL handling and the SQLite connection settings."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.store.engine import (
    WRITE_OPTION,
    EngineOptions,
    create_store_engine,
    normalize_url,
    safe_url,
)


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///x.db", "sqlite+pysqlite"),
        ("sqlite+pysqlite:///x.db", "sqlite+pysqlite"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
    ],
    ids=["sqlite", "pysqlite", "postgresql", "postgres-alias", "psycopg"],
)
def test_supported_urls_get_a_pinned_driver(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "unsupported database backend 'mysql'"),
        ("postgresql+asyncpg://u@h/db", "unsupported database backend"),
        ("not a url", "cannot be parsed"),
    ],
    ids=["mysql", "other-driver", "garbage"],
)
def test_unsupported_urls_are_rejected(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        normalize_url(url)


def test_safe_url_masks_the_password() -> None:
    shown = safe_url(normalize_url("postgresql://citadel:s3cr3t@db:5432/ca"))
    assert "s3cr3t" not in shown
    assert shown == "postgresql+psycopg://citadel:***@db:5432/ca"


def test_sqlite_connections_use_wal_foreign_keys_and_the_busy_timeout(tmp_path: Path) -> None:
    options = EngineOptions(busy_timeout=timedelta(milliseconds=1234))
    engine = create_store_engine(f"sqlite:///{tmp_path / 'x.db'}", options)
    try:
        with engine.connect() as connection:
            pragma = connection.exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 1234
    finally:
        engine.dispose()


def _other_writer_can_begin(path: Path) -> bool:
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc)
        return False
    finally:
        other.close()


@pytest.mark.parametrize(
    ("write", "locks_at_begin"), [(True, True), (False, False)], ids=["write", "read"]
)
def test_sqlite_write_transactions_take_the_write_lock_at_begin(
    tmp_path: Path, write: bool, locks_at_begin: bool
) -> None:
    path = tmp_path / "x.db"
    engine = create_store_engine(f"sqlite:///{path}")
    try:
        with engine.execution_options(**{WRITE_OPTION: write}).begin() as connection:
            connection.exec_driver_sql("SELECT 1")  # no write yet
            assert _other_writer_can_begin(path) is not locks_at_begin
    finally:
        engine.dispose()
