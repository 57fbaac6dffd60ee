"""Fixtures of the store integration tests: a repository on each backend, and raw SQL
access for tampering with what the repository wrote."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from citadel.store import Repository
from citadel.store.engine import normalize_url

# The PostgreSQL fixtures come from tests.peers.postgres, registered in tests/conftest.py.

BACKENDS = ["sqlite", "postgresql"]

RawSql = Callable[..., list[Any]]


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'citadel.db'}"


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database on each backend."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path)
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture
def repo(db_url: str) -> Iterator[Repository]:
    repository = Repository.open(db_url)
    try:
        yield repository
    finally:
        repository.close()


@pytest.fixture
def raw_sql(db_url: str) -> Iterator[RawSql]:
    """Run SQL behind the repository's back (one committed transaction per call)."""
    engine = create_engine(normalize_url(db_url), poolclass=NullPool)

    def run(statement: str, **params: Any) -> list[Any]:
        with engine.begin() as connection:
            result = connection.execute(text(statement), params)
            return list(result) if result.returns_rows else []

    try:
        yield run
    finally:
        engine.dispose()
