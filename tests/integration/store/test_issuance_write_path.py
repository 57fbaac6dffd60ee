"""The driver-level issuance write path and the audit append, on SQLite and PostgreSQL:
what they store must read back through the ORM exactly, and verify."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from citadel.identity.clock import ManualClock
from citadel.store import AuditChainError, ConflictError, Repository
from citadel.store.certificates import ROWS_PER_STATEMENT
from tests.integration.store.builders import batch, issuance
from tests.integration.store.conftest import RawSql

pytestmark = pytest.mark.integration


@pytest.fixture
def now(clock: ManualClock) -> datetime:
    return clock.now()


def test_a_batch_larger_than_one_statement_is_stored_whole_and_verifies(
    repo: Repository, now: datetime
) -> None:
    items = batch(1, 2 * ROWS_PER_STATEMENT + 3, now)
    events = repo.record_issuances(items)
    assert [e.seq for e in events] == list(range(1, len(items) + 1))
    assert len(repo.list_certificates(limit=10_000)) == len(items)
    assert repo.list_audit(limit=10_000) == events
    assert repo.verify_audit_chain().ok


def test_datetimes_in_other_zones_are_stored_as_utc_and_filter_correctly(
    repo: Repository, now: datetime
) -> None:
    plus_five = timezone(timedelta(hours=5, minutes=30))
    item = issuance(
        1,
        now,
        not_before=(now - timedelta(minutes=2)).astimezone(plus_five),
        not_after=(now + timedelta(hours=1, microseconds=7)).astimezone(plus_five),
        issued_at=now.astimezone(plus_five),
    )
    repo.record_issuances([item])
    stored = repo.get_certificate(item.serial_hex)
    assert stored.not_after == now + timedelta(hours=1, microseconds=7)
    assert stored.not_after.tzinfo is not None and stored.not_after.utcoffset() == timedelta(0)
    assert stored.issued_at == now
    before = now + timedelta(hours=1, microseconds=8)
    assert [c.serial_hex for c in repo.list_certificates(expiring_before=before)] == [
        item.serial_hex
    ]
    assert repo.list_certificates(expiring_before=now + timedelta(hours=1)) == []
    assert repo.verify_audit_chain().ok


def test_a_serial_stored_earlier_fails_the_batch_and_names_the_serial(
    repo: Repository, now: datetime
) -> None:
    repo.record_issuances(batch(1, 3, now))
    with pytest.raises(ConflictError, match=f"serial already recorded: {2:032x}, {3:032x}$"):
        repo.record_issuances(batch(2, 4, now))
    assert len(repo.list_certificates()) == 3
    assert [e.seq for e in repo.list_audit()] == [1, 2, 3]
    assert repo.verify_audit_chain().ok


def test_a_missing_audit_head_refuses_issuance(
    repo: Repository, raw_sql: RawSql, now: datetime
) -> None:
    raw_sql("DELETE FROM audit_head")
    with pytest.raises(AuditChainError, match="audit head row is missing"):
        repo.record_issuances([issuance(1, now)])
    assert repo.list_certificates() == []


def test_an_audit_payload_with_non_text_keys_still_verifies(
    repo: Repository, now: datetime
) -> None:
    # JSON turns the keys into strings, whose canonical order differs from the integers'.
    event = repo.append_audit("admin.note", "s", {"ranks": {2: "b", 10: "a"}, "t": (1, 2)}, now)
    assert event.payload == {"ranks": {"10": "a", "2": "b"}, "t": [1, 2]}
    assert repo.list_audit() == [event]
    assert repo.verify_audit_chain().ok
