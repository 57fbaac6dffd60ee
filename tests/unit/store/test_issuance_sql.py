"""The issuance write path's driver statements and parameters, per dialect, without a
database (the repository contract tests run them on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from citadel.store.certificates import ROWS_PER_STATEMENT, IssuanceSql, chunks
from citadel.store.models import IssuedCertificateRow

DIALECTS: dict[str, Dialect] = {
    "sqlite": sqlite.pysqlite.dialect(),
    "postgresql": postgresql.psycopg.dialect(),  # type: ignore[no-untyped-call]
}
zones = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=zones
)


def _orm_param(dialect: Dialect, value: datetime) -> object:
    column_type = IssuedCertificateRow.issued_at.type
    processor = column_type.dialect_impl(dialect).bind_processor(dialect)
    return value if processor is None else processor(value)


@settings(max_examples=300, deadline=None)
@given(value=moments)
@pytest.mark.parametrize("name", list(DIALECTS))
def test_datetime_parameters_are_what_the_orm_binds(name: str, value: datetime) -> None:
    dialect = DIALECTS[name]
    assert IssuanceSql(dialect).datetime_param(value) == _orm_param(dialect, value)


@pytest.mark.parametrize("name", list(DIALECTS))
def test_statements_have_one_placeholder_per_value(name: str) -> None:
    sql = IssuanceSql(DIALECTS[name])
    mark = "?" if name == "sqlite" else "%s"
    assert sql.insert_certificates(3).count(mark) == 12 * 3
    assert sql.insert_events(ROWS_PER_STATEMENT).count(mark) == 7 * ROWS_PER_STATEMENT
    assert sql.update_head.count(mark) == 3
    assert mark not in sql.lock_head


def test_the_head_is_locked_for_update_on_postgresql_only() -> None:
    assert IssuanceSql(DIALECTS["postgresql"]).lock_head.rstrip().endswith("FOR UPDATE")
    assert "FOR UPDATE" not in IssuanceSql(DIALECTS["sqlite"]).lock_head
    assert IssuanceSql(DIALECTS["sqlite"]).begin == "BEGIN IMMEDIATE"
    assert IssuanceSql(DIALECTS["postgresql"]).begin is None


@pytest.mark.parametrize("rows", [0, ROWS_PER_STATEMENT + 1])
def test_a_statement_holds_between_one_and_the_chunk_size_of_rows(rows: int) -> None:
    with pytest.raises(ValueError, match="rows must be between"):
        IssuanceSql(DIALECTS["sqlite"]).insert_events(rows)


def test_batches_are_split_into_statement_sized_chunks() -> None:
    parts = list(chunks(list(range(2 * ROWS_PER_STATEMENT + 5))))
    assert [len(p) for p in parts] == [ROWS_PER_STATEMENT, ROWS_PER_STATEMENT, 5]
    assert [x for p in parts for x in p] == list(range(2 * ROWS_PER_STATEMENT + 5))
