"""Revision 0002 (registration entries) on both backends: it upgrades a database that holds
data at 0001 without touching that data, and downgrades cleanly back to 0001."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from citadel.identity.clock import ManualClock
from citadel.store import Repository
from citadel.store.engine import create_store_engine
from citadel.store.migrate import alembic_config, current_revision, head_revision
from tests.integration.store.builders import issuance

pytestmark = pytest.mark.integration

ENTRY_TABLES = {"registration_entries", "registration_tree_changes", "registration_head"}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    store_engine = create_store_engine(db_url)
    try:
        yield store_engine
    finally:
        store_engine.dispose()


def _migrate(engine: Engine, target: str, *, down: bool = False) -> None:
    with engine.begin() as connection:
        config = alembic_config(connection=connection)
        (command.downgrade if down else command.upgrade)(config, target)


def test_upgrade_from_0001_keeps_existing_data_and_starts_entries_at_revision_zero(
    engine: Engine, db_url: str, clock: ManualClock
) -> None:
    _migrate(engine, "0001")
    assert not ENTRY_TABLES & set(inspect(engine).get_table_names())
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO locks (name, holder, expires_at) VALUES ('kept', 'me', :at)"),
            {"at": clock.now() + timedelta(hours=1)},
        )
    with Repository.open(db_url) as repository:  # migrates to head
        assert current_revision(engine) == head_revision()
        assert repository.entry_revision() == 0
        assert not repository.try_acquire_lock("kept", "other", timedelta(minutes=1), clock.now())
        repository.record_issuances([issuance(1, clock.now())])
        assert repository.verify_audit_chain().ok


def test_downgrade_to_0001_drops_only_the_entry_tables(engine: Engine, db_url: str) -> None:
    with Repository.open(db_url):
        pass
    before = set(inspect(engine).get_table_names())
    assert before >= ENTRY_TABLES
    _migrate(engine, "0001", down=True)
    assert set(inspect(engine).get_table_names()) == before - ENTRY_TABLES
    assert current_revision(engine) == "0001"
    _migrate(engine, "head")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, last_revision FROM registration_head")).all()
    assert [tuple(r) for r in rows] == [(1, 0)]
