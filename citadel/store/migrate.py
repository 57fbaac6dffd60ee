"""Alembic, driven programmatically: no ``alembic.ini`` is needed.

The scripts live in the repository's top-level ``migrations/`` directory, found relative to
the installed package.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

import citadel
from citadel.store.engine import WRITE_OPTION
from citadel.store.errors import StoreError

__all__ = [
    "MIGRATIONS_DIR",
    "alembic_config",
    "current_revision",
    "head_revision",
    "upgrade_to_head",
]

MIGRATIONS_DIR: Final = Path(citadel.__file__).resolve().parent.parent / "migrations"

# Alembic keeps its running environment in module globals, so two threads of one process
# must not migrate at once; other processes are kept out by the database (see below).
_PROCESS_LOCK: Final = threading.Lock()


def alembic_config(*, connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config for ``migrations/``; ``env.py`` uses the given connection or URL.

    Raises:
        StoreError: the migrations directory is not where the package expects it.
    """
    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise StoreError(f"the migrations directory is missing: {MIGRATIONS_DIR}")
    config = Config()
    # ConfigParser interpolation treats "%" specially.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    if url is not None:
        config.attributes["url"] = url
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError("the migrations directory has no revisions")
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine) -> None:
    """Run every pending migration in one write transaction.

    Concurrent callers are safe: threads of one process take turns, SQLite serializes
    processes with ``BEGIN IMMEDIATE``, and on PostgreSQL ``env.py`` takes a
    transaction-level advisory lock first.

    Raises:
        StoreError: Alembic refused (e.g. the database is at a revision this code does not
            know, because a newer Citadel migrated it).
    """
    with (
        _PROCESS_LOCK,
        engine.execution_options(**{WRITE_OPTION: True}).begin() as connection,
    ):
        try:
            command.upgrade(alembic_config(connection=connection), "head")
        except CommandError as exc:
            raise StoreError(f"cannot migrate the database: {exc}") from exc
