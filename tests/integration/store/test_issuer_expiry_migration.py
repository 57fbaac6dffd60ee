"""Revision 0003: certificates indexed by issuer and expiry, and the count that uses it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import Engine, inspect

from citadel.identity.clock import ManualClock
from citadel.store import Repository
from citadel.store.engine import create_store_engine
from citadel.store.migrate import alembic_config, current_revision
from tests.integration.store.builders import issuance

pytestmark = pytest.mark.integration

INDEX = "ix_issued_certificates_issuer_not_after"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    store_engine = create_store_engine(db_url)
    try:
        yield store_engine
    finally:
        store_engine.dispose()


def _indexes(engine: Engine) -> dict[str, list[str | None]]:
    return {
        str(i["name"]): list(i["column_names"])
        for i in inspect(engine).get_indexes("issued_certificates")
    }


def test_upgrade_from_0002_adds_the_index_and_downgrade_removes_it(
    engine: Engine, db_url: str, clock: ManualClock
) -> None:
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection=connection), "0002")
    assert INDEX not in _indexes(engine)
    with Repository.open(db_url) as repository:  # migrates to head
        repository.record_issuances([issuance(1, clock.now())])
    assert current_revision(engine) == "0003"
    assert _indexes(engine)[INDEX] == ["issuer_fingerprint", "not_after"]
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection=connection), "0002")
    assert INDEX not in _indexes(engine)


def test_the_count_covers_only_unexpired_unrevoked_certificates_of_the_issuers(
    db_url: str, clock: ManualClock
) -> None:
    now = clock.now()
    with Repository.open(db_url) as repository:
        items = [issuance(i, now) for i in range(1, 7)]
        mine, theirs = items[0].issuer_fingerprint, "b" * 64
        items[3] = replace(items[3], issuer_fingerprint=theirs)
        items[4] = replace(items[4], not_after=now - timedelta(seconds=1))  # expired
        items[5] = replace(items[5], not_after=now + timedelta(days=30))  # expires last
        repository.record_issuances(items)
        repository.revoke_certificate(items[1].serial_hex, "superseded", now)
        found = repository.count_unexpired_certificates(
            issuer_fingerprints=[mine], expiring_after=now, sample=2
        )
        assert found.count == 3  # items 0, 2 and 5
        assert found.latest_serials[0] == items[5].serial_hex and len(found.latest_serials) == 2
        assert found.last_not_after == items[5].not_after
        both = repository.count_unexpired_certificates(
            issuer_fingerprints=[mine, theirs], expiring_after=now
        )
        assert both.count == 4
        none = repository.count_unexpired_certificates(
            issuer_fingerprints=["x" * 9999], expiring_after=now
        )
        assert (none.count, none.last_not_after, none.latest_serials) == (0, None, ())


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"issuer_fingerprints": "abc"}, TypeError),
        ({"issuer_fingerprints": ["a"], "sample": 0}, ValueError),
        ({"issuer_fingerprints": ["a"], "sample": 101}, ValueError),
    ],
    ids=["a-string", "no-sample", "huge-sample"],
)
def test_misuse_is_a_type_or_value_error(
    db_url: str, clock: ManualClock, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with Repository.open(db_url) as repository, pytest.raises(error):
        repository.count_unexpired_certificates(expiring_after=clock.now(), **kwargs)  # type: ignore[arg-type]
