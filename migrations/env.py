"""Alembic environment for Citadel.

Driven programmatically (``citadel.store.migrate``): the caller puts an open connection in
``config.attributes["connection"]`` (or a URL in ``config.attributes["url"]``). Without
either, the URL comes from the ``sqlalchemy.url`` option or ``CITADEL_DATABASE_URL``, so
the plain ``alembic`` command also works with a small ini file.
"""

from __future__ import annotations

import logging.config
import os

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from citadel.store.engine import WRITE_OPTION, create_store_engine, normalize_url
from citadel.store.models import Base

# Held for the migration transaction so replicas starting together migrate one at a time.
_PG_MIGRATION_LOCK_KEY = 0x43_49_54_41_44_45_4C  # "CITADEL"

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.attributes.get("connection") is None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("CITADEL_DATABASE_URL")
    )
    if not url:
        raise RuntimeError(
            "no database URL: pass one in config.attributes['url'], set sqlalchemy.url, "
            "or set CITADEL_DATABASE_URL"
        )
    return str(url)


def _run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
            )
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=normalize_url(_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _run_with(connection)
        return
    engine = create_store_engine(_url())
    try:
        with engine.execution_options(**{WRITE_OPTION: True}).begin() as own_connection:
            _run_with(own_connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
