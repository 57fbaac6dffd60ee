"""Alembic migrations on both backends: they build exactly the ORM's schema, run once even
when replicas start together, and refuse databases they do not know."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from citadel.identity.clock import ManualClock
from citadel.store import Repository, StoreError
from citadel.store.engine import create_store_engine, normalize_url
from citadel.store.migrate import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    head_revision,
    upgrade_to_head,
)
from citadel.store.models import Base
from tests.integration.store.builders import issuance

pytestmark = pytest.mark.integration

TABLES = {"alembic_version", *Base.metadata.tables}


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    store_engine = create_store_engine(db_url)
    try:
        yield store_engine
    finally:
        store_engine.dispose()


def _schema_diff(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_migrations_directory_is_found_next_to_the_package() -> None:
    assert (MIGRATIONS_DIR / "env.py").is_file()
    assert (MIGRATIONS_DIR / "versions" / "0001_initial.py").is_file()
    assert head_revision() == "0003"


def test_upgrade_of_an_empty_database_builds_exactly_the_orm_schema(engine: Engine) -> None:
    upgrade_to_head(engine)
    assert _schema_diff(engine) == []
    assert set(inspect(engine).get_table_names()) == TABLES


def test_schema_comparison_notices_a_missing_index(engine: Engine) -> None:
    """The comparison above can fail: drop one index and it reports it."""
    upgrade_to_head(engine)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_issued_certificates_not_after"))
    diff = _schema_diff(engine)
    assert [op[0] for op in diff] == ["add_index"]  # type: ignore[index]


def test_issued_certificates_are_indexed_by_spiffe_id_and_expiry(engine: Engine) -> None:
    upgrade_to_head(engine)
    indexed = {
        tuple(index["column_names"]) for index in inspect(engine).get_indexes("issued_certificates")
    }
    assert {("spiffe_id",), ("not_after",)} <= indexed


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade_to_head(engine)
    upgrade_to_head(engine)
    assert current_revision(engine) == head_revision()


def test_downgrade_to_base_removes_every_table_and_upgrade_restores_them(
    engine: Engine,
) -> None:
    upgrade_to_head(engine)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade_to_head(engine)
    assert _schema_diff(engine) == []


def test_fresh_database_gets_an_audit_head_at_genesis(engine: Engine) -> None:
    upgrade_to_head(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT id, last_seq, last_hash FROM audit_head")).all()
    assert [tuple(row) for row in rows] == [(1, 0, "0" * 64)]


def test_migrating_by_url_works_without_a_connection(db_url: str) -> None:
    """env.py's own-engine path, as the alembic command line uses it."""
    command.upgrade(alembic_config(url=db_url), "head")
    plain = create_engine(normalize_url(db_url), poolclass=NullPool)
    try:
        assert current_revision(plain) == head_revision()
    finally:
        plain.dispose()


def test_offline_mode_emits_the_create_statements(
    db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command.upgrade(alembic_config(url=db_url), "head", sql=True)
    emitted = capsys.readouterr().out
    assert "CREATE TABLE issued_certificates" in emitted
    assert "CREATE INDEX ix_issued_certificates_spiffe_id" in emitted


def test_open_without_auto_upgrade_refuses_a_fresh_database(db_url: str) -> None:
    with pytest.raises(StoreError, match="run the migrations"):
        Repository.open(db_url, auto_upgrade=False)


def test_open_without_auto_upgrade_accepts_a_current_database(db_url: str) -> None:
    Repository.open(db_url).close()
    with Repository.open(db_url, auto_upgrade=False) as repository:
        assert repository.list_audit() == []


def test_database_migrated_by_a_newer_citadel_is_refused(engine: Engine, db_url: str) -> None:
    upgrade_to_head(engine)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="cannot migrate the database"):
        Repository.open(db_url)
    with pytest.raises(StoreError, match="revision 9999"):
        Repository.open(db_url, auto_upgrade=False)


def test_replicas_opening_a_fresh_database_together_migrate_it_once(
    db_url: str, clock: ManualClock
) -> None:
    now: datetime = clock.now()
    barrier = threading.Barrier(3, timeout=60)
    errors: list[BaseException] = []
    repositories: list[Repository] = []
    lock = threading.Lock()

    def open_replica() -> None:
        try:
            barrier.wait()
            opened = Repository.open(db_url)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            repositories.append(opened)

    threads = [threading.Thread(target=open_replica) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert errors == []
        assert len(repositories) == 3
        repositories[0].record_issuances([issuance(1, now)])
        assert repositories[2].get_certificate(f"{1:032x}").serial_hex == f"{1:032x}"
    finally:
        for repository in repositories:
            repository.close()


def test_sqlite_database_in_a_fresh_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "data" / "citadel.db"
    path.parent.mkdir()
    with Repository.open(f"sqlite:///{path}") as repository:
        assert repository.backend == "sqlite"
    assert path.is_file()


_OPENING_PROCESS = """
import sys, time
from citadel.store import Repository

time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Repository.open(sys.argv[1]).close()
"""


def test_replica_processes_opening_a_fresh_database_together_migrate_it_once(
    db_url: str, engine: Engine
) -> None:
    """Separate processes, as CA replicas are: the database's own lock must serialize them."""
    start_at = time.time() + 3
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _OPENING_PROCESS, db_url, str(start_at)],
            cwd=Path(__file__).resolve().parents[3],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr[-2000:]
    assert current_revision(engine) == head_revision()
    assert _schema_diff(engine) == []
