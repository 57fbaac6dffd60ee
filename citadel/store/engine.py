"""Engine construction for the two supported backends.

* SQLite (``sqlite:///path``): WAL journal, foreign keys on, a busy timeout, and SQLAlchemy
  (not the sqlite3 module) emits ``BEGIN``: ``BEGIN IMMEDIATE`` for write transactions, so
  writers queue on the database lock up front instead of failing at commit time.
* PostgreSQL (``postgresql+psycopg://``; ``postgresql://`` is taken to mean psycopg 3): a
  connect timeout, a lock timeout, and pre-ping so a restarted server does not poison the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import ConnectionPoolEntry, StaticPool

from citadel.store.errors import StoreError

__all__ = [
    "WRITE_OPTION",
    "EngineOptions",
    "create_store_engine",
    "normalize_url",
    "safe_url",
]

# Execution option that marks a write transaction (SQLite then begins IMMEDIATE).
WRITE_OPTION: Final = "citadel_write"

_SQLITE_DRIVERS: Final = frozenset({"sqlite", "sqlite+pysqlite"})
_POSTGRES_DRIVERS: Final = frozenset({"postgres", "postgresql", "postgresql+psycopg"})


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """Tunables of a store engine.

    Attributes:
        busy_timeout: SQLite: how long a writer waits for the database lock.
        lock_timeout: PostgreSQL: how long a statement waits for a row lock.
        connect_timeout: PostgreSQL: how long connecting may take.
    """

    busy_timeout: timedelta = timedelta(seconds=10)
    lock_timeout: timedelta = timedelta(seconds=10)
    connect_timeout: timedelta = timedelta(seconds=5)


def normalize_url(url: str | URL) -> URL:
    """Parse ``url`` and pin the driver (pysqlite or psycopg 3).

    Raises:
        ValueError: unparseable, or a backend other than SQLite or PostgreSQL.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ValueError("the database URL cannot be parsed") from exc
    if parsed.drivername in _SQLITE_DRIVERS:
        return parsed.set(drivername="sqlite+pysqlite")
    if parsed.drivername in _POSTGRES_DRIVERS:
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(
        f"unsupported database backend {parsed.drivername!r}: use sqlite:/// or postgresql://"
    )


def safe_url(url: URL) -> str:
    """The URL with its password masked, for messages and logs."""
    return url.render_as_string(hide_password=True)


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def create_store_engine(url: str | URL, options: EngineOptions | None = None) -> Engine:
    """Build an engine for ``url`` with Citadel's per-backend settings.

    Raises:
        ValueError: a bad or unsupported URL.
        StoreError: the PostgreSQL driver (psycopg 3) is not installed.
    """
    options = options or EngineOptions()
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed, options)
    return _postgres_engine(parsed, options)


def _sqlite_engine(url: URL, options: EngineOptions) -> Engine:
    busy_ms = int(options.busy_timeout.total_seconds() * 1000)
    kwargs: dict[str, Any] = {
        "connect_args": {
            "check_same_thread": False,
            "timeout": options.busy_timeout.total_seconds(),
        }
    }
    if _is_memory_sqlite(url):
        # One shared connection, or each checkout would see its own empty database.
        # Only for single-threaded use (tests, tools).
        kwargs["poolclass"] = StaticPool
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module; _on_begin below emits it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {busy_ms:d}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        write = bool(conn.get_execution_options().get(WRITE_OPTION, False))
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


def _postgres_engine(url: URL, options: EngineOptions) -> Engine:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise StoreError(
            "PostgreSQL needs the psycopg 3 driver: pip install 'citadel[postgres]'"
        ) from exc
    lock_ms = int(options.lock_timeout.total_seconds() * 1000)
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(1, int(options.connect_timeout.total_seconds())),
            "application_name": "citadel",
            "options": f"-c lock_timeout={lock_ms:d}",
        },
    )
