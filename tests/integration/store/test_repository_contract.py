"""The repository contract: every public method, run against SQLite and PostgreSQL.

Each test gets an empty, migrated database on each backend (the ``repo`` fixture, ids
``sqlite`` and ``postgresql``); PostgreSQL is a real server started by the tests.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from citadel.identity.clock import ManualClock
from citadel.store import (
    AuditChainError,
    AuditEvent,
    ConflictError,
    EngineOptions,
    InvalidRecordError,
    IssuedCertificateRecord,
    NotFoundError,
    Repository,
    StoreUnavailableError,
    TokenRejectedError,
)
from citadel.store.audit_chain import GENESIS_HASH, event_hash
from tests.integration.store.builders import authority, batch, issuance
from tests.integration.store.conftest import RawSql
from tests.peers.postgres import free_port, restart_postgres, running_postgres, stop_postgres

pytestmark = pytest.mark.integration

_T = TypeVar("_T")
THREAD_WAIT_S = 120


@pytest.fixture
def now(clock: ManualClock) -> datetime:
    return clock.now()


def _run_together(workers: int, work: Callable[[int], _T]) -> list[_T]:
    """Start ``workers`` threads at one barrier; return their results (or raise theirs)."""
    barrier = threading.Barrier(workers, timeout=THREAD_WAIT_S)

    def start(index: int) -> _T:
        barrier.wait()
        return work(index)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(start, i) for i in range(workers)]
        return [future.result(timeout=THREAD_WAIT_S) for future in futures]


def _as_record(item: Any) -> IssuedCertificateRecord:
    return IssuedCertificateRecord(**vars(item))


# ------------------------------------------------------------------ authorities


def test_saved_authority_reads_back_equal(repo: Repository, now: datetime) -> None:
    root = authority("root-1", now, kind="root", state="active", activated_at=now)
    repo.save_authority(root)
    assert repo.get_authority("root-1") == root


def test_jwt_authority_may_have_no_serial(repo: Repository, now: datetime) -> None:
    key = authority("jwt-1", now, kind="jwt", serial_hex="", certificate_pem="PUBLIC KEY PEM")
    repo.save_authority(key)
    assert repo.get_authority("jwt-1") == key


def test_authority_datetimes_come_back_in_utc(repo: Repository, now: datetime) -> None:
    plus_two = timezone(timedelta(hours=2))
    record = authority("a", now, created_at=now.astimezone(plus_two))
    stored = repo.get_authority(repo.save_authority(record).id)
    assert stored.created_at == now
    assert stored.created_at.utcoffset() == timedelta(0)


def test_saving_a_duplicate_authority_id_is_a_conflict(repo: Repository, now: datetime) -> None:
    repo.save_authority(authority("a", now))
    with pytest.raises(ConflictError, match="already exists"):
        repo.save_authority(authority("a", now, key_ref="other"))
    assert repo.get_authority("a").key_ref == "file:keys/a.pem"


def test_authority_with_unknown_parent_is_not_found(repo: Repository, now: datetime) -> None:
    with pytest.raises(NotFoundError, match="parent"):
        repo.save_authority(authority("child", now, parent_id="missing"))
    assert repo.list_authorities() == []


def test_authority_with_parent_links_to_it(repo: Repository, now: datetime) -> None:
    repo.save_authority(authority("root", now, kind="root"))
    repo.save_authority(authority("int", now, parent_id="root"))
    assert repo.get_authority("int").parent_id == "root"


@pytest.mark.parametrize(
    "authority_id",
    ["missing", "x" * 10_000, "nul\x00id", "\ud800"],
    ids=["unknown", "oversized", "nul", "lone-surrogate"],
)
def test_unknown_authority_is_not_found(repo: Repository, authority_id: str) -> None:
    with pytest.raises(NotFoundError):
        repo.get_authority(authority_id)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("kind", "leaf"),
        ("state", "active-ish"),
        ("id", ""),
        ("key_ref", "k\x00"),
        ("serial_hex", ""),
        ("not_after", datetime(2027, 1, 1)),
    ],
    ids=[
        "unknown-kind",
        "unknown-state",
        "empty-id",
        "nul-in-key-ref",
        "x509-without-serial",
        "naive-datetime",
    ],
)
def test_invalid_authority_is_rejected_before_storing(
    repo: Repository, now: datetime, field: str, value: str
) -> None:
    with pytest.raises(InvalidRecordError):
        repo.save_authority(authority("a", now, **{field: value}))
    assert repo.list_authorities() == []


def test_list_authorities_filters_by_kind_and_state(repo: Repository, now: datetime) -> None:
    repo.save_authority(authority("root", now, kind="root", state="active"))
    repo.save_authority(authority("int-1", now, state="active", created_at=now))
    repo.save_authority(authority("int-2", now, created_at=now + timedelta(seconds=1)))
    repo.save_authority(authority("jwt", now, kind="jwt", state="retired"))
    assert [a.id for a in repo.list_authorities()] == ["int-1", "jwt", "root", "int-2"]
    assert [a.id for a in repo.list_authorities(kind="intermediate")] == ["int-1", "int-2"]
    assert [a.id for a in repo.list_authorities(states={"active"})] == ["int-1", "root"]
    assert [
        a.id for a in repo.list_authorities(kind="intermediate", states=["prepared", "retired"])
    ] == ["int-2"]
    assert repo.list_authorities(states=[]) == []


def test_activating_an_authority_sets_state_and_activation_time(
    repo: Repository, now: datetime
) -> None:
    repo.save_authority(authority("a", now))
    later = now + timedelta(hours=1)
    updated = repo.set_authority_state("a", "active", later)
    assert (updated.state, updated.activated_at) == ("active", later)
    assert repo.get_authority("a") == updated


def test_retiring_an_authority_keeps_its_activation_time(repo: Repository, now: datetime) -> None:
    repo.save_authority(authority("a", now))
    repo.set_authority_state("a", "active", now)
    retired = repo.set_authority_state("a", "retired", now + timedelta(days=1))
    assert (retired.state, retired.activated_at) == ("retired", now)


def test_revoked_authority_cannot_change_state(repo: Repository, now: datetime) -> None:
    repo.save_authority(authority("a", now))
    repo.set_authority_state("a", "revoked", now)
    with pytest.raises(ConflictError, match="cannot go from 'revoked' to 'active'"):
        repo.set_authority_state("a", "active", now)
    assert repo.get_authority("a").state == "revoked"


def test_setting_the_same_state_again_is_a_conflict(repo: Repository, now: datetime) -> None:
    repo.save_authority(authority("a", now, state="active"))
    with pytest.raises(ConflictError):
        repo.set_authority_state("a", "active", now)


def test_setting_state_of_unknown_authority_is_not_found(repo: Repository, now: datetime) -> None:
    with pytest.raises(NotFoundError):
        repo.set_authority_state("missing", "active", now)


def test_setting_an_unknown_state_is_rejected(repo: Repository, now: datetime) -> None:
    repo.save_authority(authority("a", now))
    with pytest.raises(InvalidRecordError, match="state must be one of"):
        repo.set_authority_state("a", "tainted", now)


# -------------------------------------------------------------------- issuance


def test_recorded_certificate_reads_back_equal(repo: Repository, now: datetime) -> None:
    item = issuance(1, now, metadata={"cluster": "c1", "node": "n-7"})
    repo.record_issuances([item])
    assert repo.get_certificate(item.serial_hex) == _as_record(item)


def test_record_issuances_returns_one_chained_event_per_certificate(
    repo: Repository, now: datetime
) -> None:
    items = batch(1, 3, now)
    events = repo.record_issuances(items, requester_action="renew")
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.action for e in events] == ["renew"] * 3
    assert [e.subject for e in events] == [i.spiffe_id for i in items]
    assert events[0].prev_hash == GENESIS_HASH
    assert [e.prev_hash for e in events[1:]] == [e.hash for e in events[:-1]]
    first = events[0].payload
    assert first["serial"] == items[0].serial_hex
    assert first["spiffe_id"] == items[0].spiffe_id
    assert first["fingerprint_sha256"] == items[0].fingerprint_sha256
    assert first["issuer_fingerprint"] == items[0].issuer_fingerprint
    assert first["not_after"] == items[0].not_after.isoformat()
    assert repo.list_audit() == events


def test_returned_event_hash_follows_the_documented_formula(
    repo: Repository, now: datetime
) -> None:
    (event,) = repo.record_issuances([issuance(1, now)])
    assert event.hash == event_hash(
        prev_hash=GENESIS_HASH,
        seq=1,
        at=event.at,
        action=event.action,
        subject=event.subject,
        payload=event.payload,
    )


def test_empty_batch_records_nothing(repo: Repository) -> None:
    assert repo.record_issuances([]) == []
    assert repo.list_audit() == []


def test_duplicate_serial_is_a_conflict_and_the_whole_batch_is_rolled_back(
    repo: Repository, now: datetime
) -> None:
    repo.record_issuances([issuance(5, now)])
    with pytest.raises(ConflictError, match=f"serial already recorded: {5:032x}"):
        repo.record_issuances([issuance(4, now), issuance(5, now), issuance(6, now)])
    assert [c.serial_hex for c in repo.list_certificates()] == [f"{5:032x}"]
    assert [e.seq for e in repo.list_audit()] == [1]
    assert repo.verify_audit_chain().ok


def test_duplicate_serial_within_one_batch_is_a_conflict(repo: Repository, now: datetime) -> None:
    with pytest.raises(ConflictError, match="twice"):
        repo.record_issuances([issuance(1, now), issuance(2, now), issuance(1, now)])
    assert repo.list_certificates() == []


HOSTILE_STRINGS = {
    "sql-injection": "x'); DROP TABLE issued_certificates; --",
    "quotes-and-shell": "\"'`$(rm -rf /)\\\\n",
    "unicode": "ünïcødé 漢字 🚀 \u202etxt.exe \u200b",
    "control-characters": "\t\r\n\x1b[31m\x07\x7f",
    "like-wildcards": "%_%\\_",
    "json-lookalike": '{"store_record":"issued"}',
    "oversized-1mib": "A" * (1024 * 1024),
}


@pytest.mark.parametrize("hostile", list(HOSTILE_STRINGS.values()), ids=list(HOSTILE_STRINGS))
def test_hostile_and_oversized_strings_round_trip_intact(
    repo: Repository, now: datetime, hostile: str
) -> None:
    item = issuance(
        1,
        now,
        requester=hostile,
        metadata={hostile: hostile, "nul": "a\x00b", "surrogate": "\ud800"},
        certificate_pem=hostile,
    )
    repo.record_issuances([item])
    assert repo.get_certificate(item.serial_hex) == _as_record(item)
    revoked = repo.revoke_certificate(item.serial_hex, hostile, now)
    assert repo.get_certificate(item.serial_hex) == revoked
    assert revoked.revocation_reason == hostile
    event = repo.append_audit("admin.note", hostile, {"text": hostile, hostile: [hostile]}, now)
    assert repo.list_audit(after_seq=event.seq - 1) == [event]
    assert event.subject == hostile
    assert event.payload == {"text": hostile, hostile: [hostile]}
    assert repo.verify_audit_chain().ok


def test_spiffe_id_of_the_maximum_length_is_stored(repo: Repository, now: datetime) -> None:
    prefix = "spiffe://example.org/"
    longest = prefix + "é" * ((2048 - len(prefix)) // 2)  # 2 bytes each in UTF-8
    item = issuance(1, now, spiffe_id=longest)
    repo.record_issuances([item])
    assert repo.get_certificate(item.serial_hex).spiffe_id == longest


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("spiffe_id", "spiffe://example.org/" + "a" * 2048),
        ("serial_hex", "f" * 129),
        ("requester", "nul\x00byte"),
        ("certificate_pem", "lone \udc00 surrogate"),
        ("fingerprint_sha256", ""),
        ("issued_at", datetime(2026, 6, 1, 12)),
        ("metadata", {"k": 1}),
    ],
    ids=[
        "spiffe-id-too-long",
        "serial-too-long",
        "nul-in-text",
        "lone-surrogate",
        "empty-fingerprint",
        "naive-datetime",
        "non-string-metadata",
    ],
)
def test_invalid_issuance_is_rejected_and_nothing_is_stored(
    repo: Repository, now: datetime, field: str, value: object
) -> None:
    with pytest.raises(InvalidRecordError, match=field):
        repo.record_issuances([issuance(1, now), issuance(2, now, **{field: value})])
    assert repo.list_certificates() == []
    assert repo.list_audit() == []


@pytest.mark.parametrize(
    "serial",
    ["00" * 16, "' OR '1'='1", "x" * 5000, "a\x00b"],
    ids=["unknown", "injection", "oversized", "nul"],
)
def test_unknown_serial_is_not_found(repo: Repository, now: datetime, serial: str) -> None:
    repo.record_issuances([issuance(1, now)])
    with pytest.raises(NotFoundError):
        repo.get_certificate(serial)


def test_list_certificates_filters_by_prefix_expiry_and_revocation(
    repo: Repository, now: datetime
) -> None:
    repo.record_issuances(
        [
            issuance(1, now, spiffe_id="spiffe://td/ns/a/sa/x", not_after=now + timedelta(hours=1)),
            issuance(2, now, spiffe_id="spiffe://td/ns/a/sa/y", not_after=now + timedelta(hours=3)),
            issuance(
                3, now, spiffe_id="spiffe://td/ns/ab/sa/z", not_after=now + timedelta(hours=2)
            ),
            issuance(
                4, now, spiffe_id="spiffe://td/ns/a_/sa/w", not_after=now + timedelta(hours=4)
            ),
        ]
    )
    repo.revoke_certificate(f"{2:032x}", "superseded", now)

    def serials(**kwargs: Any) -> list[int]:
        return [int(c.serial_hex, 16) for c in repo.list_certificates(**kwargs)]

    assert serials() == [1, 3, 2, 4]  # by not_after
    assert serials(spiffe_id_prefix="spiffe://td/ns/a/") == [1, 2]
    assert serials(spiffe_id_prefix="spiffe://td/ns/a_/") == [4]  # "_" is literal
    assert serials(spiffe_id_prefix="spiffe://td/ns/%") == []  # "%" is literal
    assert serials(expiring_before=now + timedelta(hours=3)) == [1, 3]
    assert serials(revoked=True) == [2]
    assert serials(revoked=False) == [1, 3, 4]
    assert serials(limit=2) == [1, 3]
    assert serials(spiffe_id_prefix="spiffe://td/", revoked=False, limit=1) == [1]


@pytest.mark.parametrize("limit", [0, -1, 10_001], ids=["zero", "negative", "too-large"])
def test_list_certificates_rejects_a_bad_limit(repo: Repository, limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        repo.list_certificates(limit=limit)


# ------------------------------------------------------------------ revocation


def test_revoking_marks_the_certificate_and_appends_an_event(
    repo: Repository, now: datetime
) -> None:
    item = issuance(1, now)
    repo.record_issuances([item])
    later = now + timedelta(minutes=5)
    revoked = repo.revoke_certificate(item.serial_hex, "keyCompromise", later)
    assert (revoked.revoked_at, revoked.revocation_reason) == (later, "keyCompromise")
    assert revoked.is_revoked
    assert repo.get_certificate(item.serial_hex) == revoked
    last = repo.list_audit()[-1]
    assert (last.seq, last.action, last.subject) == (2, "revoke", item.spiffe_id)
    assert last.payload["serial"] == item.serial_hex
    assert last.payload["reason"] == "keyCompromise"


def test_revoking_an_unknown_serial_is_not_found(repo: Repository, now: datetime) -> None:
    with pytest.raises(NotFoundError):
        repo.revoke_certificate("ff" * 16, "keyCompromise", now)
    assert repo.list_audit() == []


def test_revoking_twice_is_a_conflict_and_keeps_the_first_revocation(
    repo: Repository, now: datetime
) -> None:
    item = issuance(1, now)
    repo.record_issuances([item])
    first = repo.revoke_certificate(item.serial_hex, "keyCompromise", now)
    with pytest.raises(ConflictError, match="already revoked"):
        repo.revoke_certificate(item.serial_hex, "superseded", now + timedelta(hours=1))
    assert repo.get_certificate(item.serial_hex) == first
    assert len(repo.list_audit()) == 2


def test_revocation_needs_a_reason(repo: Repository, now: datetime) -> None:
    repo.record_issuances([issuance(1, now)])
    with pytest.raises(InvalidRecordError, match="reason"):
        repo.revoke_certificate(f"{1:032x}", "", now)


def test_list_revocations_filters_by_issuer(repo: Repository, now: datetime) -> None:
    repo.record_issuances(
        [
            issuance(1, now, issuer_fingerprint="aa" * 32),
            issuance(2, now, issuer_fingerprint="bb" * 32),
            issuance(3, now, issuer_fingerprint="aa" * 32),
        ]
    )
    repo.revoke_certificate(f"{3:032x}", "superseded", now + timedelta(seconds=1))
    repo.revoke_certificate(f"{2:032x}", "keyCompromise", now + timedelta(seconds=2))
    assert [int(c.serial_hex, 16) for c in repo.list_revocations()] == [3, 2]
    assert [int(c.serial_hex, 16) for c in repo.list_revocations("aa" * 32)] == [3]
    assert repo.list_revocations("cc" * 32) == []
    assert repo.list_revocations("x" * 500) == []


# ----------------------------------------------------------------------- audit


def test_append_audit_links_to_the_previous_event(repo: Repository, now: datetime) -> None:
    (issued,) = repo.record_issuances([issuance(1, now)])
    event = repo.append_audit("rotation.prepare", "int-2", {"not_after": now}, now)
    assert (event.seq, event.prev_hash) == (2, issued.hash)
    assert event.payload == {"not_after": "2026-06-01T12:00:00+00:00"}
    assert repo.verify_audit_chain().ok


def test_list_audit_pages_by_sequence(repo: Repository, now: datetime) -> None:
    for n in range(5):
        repo.append_audit("step", f"s{n}", {"n": n}, now)
    assert [e.seq for e in repo.list_audit(limit=2)] == [1, 2]
    assert [e.seq for e in repo.list_audit(after_seq=2, limit=2)] == [3, 4]
    assert [e.seq for e in repo.list_audit(after_seq=4)] == [5]
    assert repo.list_audit(after_seq=5) == []


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ({"store_record": "issued"}, InvalidRecordError),
        ({"value": {1, 2}}, TypeError),
        ({"value": float("nan")}, ValueError),
        ({"at": datetime(2026, 1, 1)}, TypeError),
    ],
    ids=["reserved-key", "set", "nan", "naive-datetime"],
)
def test_append_audit_rejects_payloads_it_cannot_chain(
    repo: Repository, now: datetime, payload: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        repo.append_audit("step", "s", payload, now)
    assert repo.list_audit() == []


def test_fresh_and_empty_chains_verify(repo: Repository, now: datetime) -> None:
    empty = repo.verify_audit_chain()
    assert (empty.ok, empty.checked, empty.first_bad_seq, empty.problem) == (True, 0, None, None)
    repo.record_issuances(batch(1, 4, now))
    repo.revoke_certificate(f"{2:032x}", "superseded", now)
    repo.append_audit("rotation.activate", "int-1", {}, now)
    result = repo.verify_audit_chain()
    assert (result.ok, result.checked, result.first_bad_seq, result.problem) == (
        True,
        6,
        None,
        None,
    )


@pytest.fixture
def chained(repo: Repository, now: datetime) -> list[AuditEvent]:
    """Five events: four issuances and a revocation."""
    events = repo.record_issuances(batch(1, 4, now))
    repo.revoke_certificate(f"{3:032x}", "keyCompromise", now)
    return [*events, repo.list_audit()[-1]]


def test_edited_audit_event_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql("UPDATE audit_events SET subject = 'spiffe://evil/x' WHERE seq = 2")
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 2, 1)
    assert result.problem is not None and "edited" in result.problem


def test_edited_audit_payload_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql(
        "UPDATE audit_events SET payload = REPLACE(payload, 'keyCompromise', 'superseded') "
        "WHERE seq = 5"
    )
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq) == (False, 5)


def test_deleted_middle_audit_event_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql("DELETE FROM audit_events WHERE seq = 3")
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 3, 2)
    assert result.problem is not None and "missing" in result.problem


def test_deleted_middle_event_with_renumbered_successors_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql("DELETE FROM audit_events WHERE seq = 3")
    for seq in (4, 5):
        raw_sql("UPDATE audit_events SET seq = :new WHERE seq = :old", new=seq - 1, old=seq)
    raw_sql("UPDATE audit_head SET last_seq = 4")
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq) == (False, 3)


def test_deleted_tail_audit_event_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql("DELETE FROM audit_events WHERE seq = 5")
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 5, 4)
    assert result.problem is not None and "tail" in result.problem


def test_reordered_audit_events_are_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql("UPDATE audit_events SET seq = -1 WHERE seq = 2")
    raw_sql("UPDATE audit_events SET seq = 2 WHERE seq = 3")
    raw_sql("UPDATE audit_events SET seq = 3 WHERE seq = -1")
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_edited_certificate_row_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql(
        "UPDATE issued_certificates SET spiffe_id = 'spiffe://example.org/ns/kube-system/sa/admin' "
        "WHERE serial_hex = :serial",
        serial=f"{2:032x}",
    )
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert result.problem is not None and f"{2:032x}" in result.problem
    assert "edited" in result.problem


def test_edited_certificate_pem_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql(
        "UPDATE issued_certificates SET certificate_pem = 'forged' WHERE serial_hex = :serial",
        serial=f"{4:032x}",
    )
    assert repo.verify_audit_chain().first_bad_seq == 4


def test_unrevoked_certificate_row_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql(
        "UPDATE issued_certificates SET revoked_at = NULL, revocation_reason = NULL "
        "WHERE serial_hex = :serial",
        serial=f"{3:032x}",
    )
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert result.problem is not None and "no longer revoked" in result.problem


def test_deleted_certificate_row_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent]
) -> None:
    raw_sql("DELETE FROM issued_certificates WHERE serial_hex = :serial", serial=f"{3:032x}")
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.problem is not None and "deleted" in result.problem


def test_certificate_row_inserted_behind_the_repository_is_detected(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent], now: datetime
) -> None:
    raw_sql(
        "INSERT INTO issued_certificates (serial_hex, spiffe_id, not_before, not_after, "
        "fingerprint_sha256, issuer_fingerprint, requester, metadata_json, certificate_pem, "
        "issued_at) SELECT 'f00d', spiffe_id, not_before, not_after, fingerprint_sha256, "
        "issuer_fingerprint, requester, metadata_json, certificate_pem, issued_at "
        "FROM issued_certificates WHERE serial_hex = :serial",
        serial=f"{1:032x}",
    )
    result = repo.verify_audit_chain()
    assert (result.ok, result.first_bad_seq) == (False, None)
    assert result.problem is not None and "f00d has no issuance event" in result.problem


def test_appending_after_the_head_row_is_lost_fails_loudly(
    repo: Repository, raw_sql: RawSql, chained: list[AuditEvent], now: datetime
) -> None:
    raw_sql("DELETE FROM audit_head")
    with pytest.raises(AuditChainError, match="audit head row is missing"):
        repo.append_audit("step", "s", {}, now)
    assert repo.verify_audit_chain().problem == "the audit head row is missing"


# ----------------------------------------------------------------- join tokens


def test_join_token_is_consumed_exactly_once(repo: Repository, now: datetime) -> None:
    created = repo.create_join_token(
        "h1" * 32, "spiffe://td/node/n1", now, now + timedelta(hours=1)
    )
    assert created.used_at is None
    assert repo.consume_join_token("h1" * 32, now + timedelta(minutes=1)) == "spiffe://td/node/n1"
    with pytest.raises(TokenRejectedError, match="already used"):
        repo.consume_join_token("h1" * 32, now + timedelta(minutes=2))


def test_expired_join_token_is_rejected(repo: Repository, now: datetime) -> None:
    repo.create_join_token("h2" * 32, "spiffe://td/node/n2", now, now + timedelta(minutes=10))
    with pytest.raises(TokenRejectedError, match="expired"):
        repo.consume_join_token("h2" * 32, now + timedelta(minutes=10))  # at expiry: expired
    assert repo.consume_join_token("h2" * 32, now + timedelta(minutes=9)) == "spiffe://td/node/n2"


@pytest.mark.parametrize(
    "token_hash",
    ["00" * 32, "x" * 4096, "a\x00b", ""],
    ids=["unknown", "oversized", "nul", "empty"],
)
def test_unknown_join_token_is_rejected(repo: Repository, now: datetime, token_hash: str) -> None:
    with pytest.raises(TokenRejectedError, match="unknown"):
        repo.consume_join_token(token_hash, now)


def test_duplicate_join_token_is_a_conflict(repo: Repository, now: datetime) -> None:
    repo.create_join_token("h3" * 32, "spiffe://td/node/a", now, now + timedelta(hours=1))
    with pytest.raises(ConflictError):
        repo.create_join_token("h3" * 32, "spiffe://td/node/b", now, now + timedelta(hours=1))
    assert repo.consume_join_token("h3" * 32, now) == "spiffe://td/node/a"


def test_join_token_must_expire_after_creation(repo: Repository, now: datetime) -> None:
    with pytest.raises(InvalidRecordError, match="expires_at"):
        repo.create_join_token("h4" * 32, "spiffe://td/node/a", now, now)


def test_concurrent_consumers_get_a_join_token_once(repo: Repository, now: datetime) -> None:
    repo.create_join_token("h5" * 32, "spiffe://td/node/c", now, now + timedelta(hours=1))

    def consume(_: int) -> str:
        try:
            return repo.consume_join_token("h5" * 32, now)
        except TokenRejectedError:
            return "rejected"

    results = _run_together(4, consume)
    assert sorted(results) == ["rejected"] * 3 + ["spiffe://td/node/c"]


# ----------------------------------------------------------------------- locks


def test_lock_is_exclusive_until_it_expires(repo: Repository, now: datetime) -> None:
    ttl = timedelta(seconds=30)
    assert repo.try_acquire_lock("rotation", "replica-a", ttl, now)
    assert not repo.try_acquire_lock("rotation", "replica-b", ttl, now + timedelta(seconds=29))
    assert repo.try_acquire_lock("rotation", "replica-b", ttl, now + timedelta(seconds=30))
    assert not repo.try_acquire_lock("rotation", "replica-a", ttl, now + timedelta(seconds=31))


def test_lock_holder_can_renew(repo: Repository, now: datetime) -> None:
    ttl = timedelta(seconds=30)
    assert repo.try_acquire_lock("rotation", "replica-a", ttl, now)
    assert repo.try_acquire_lock("rotation", "replica-a", ttl, now + timedelta(seconds=20))
    assert not repo.try_acquire_lock("rotation", "replica-b", ttl, now + timedelta(seconds=40))


def test_lock_is_released_only_by_its_holder(repo: Repository, now: datetime) -> None:
    ttl = timedelta(minutes=5)
    assert repo.try_acquire_lock("job", "a", ttl, now)
    assert not repo.release_lock("job", "b")
    assert not repo.try_acquire_lock("job", "b", ttl, now)
    assert repo.release_lock("job", "a")
    assert not repo.release_lock("job", "a")
    assert repo.try_acquire_lock("job", "b", ttl, now)


def test_locks_with_different_names_are_independent(repo: Repository, now: datetime) -> None:
    ttl = timedelta(minutes=5)
    assert repo.try_acquire_lock("one", "a", ttl, now)
    assert repo.try_acquire_lock("two", "b", ttl, now)


@pytest.mark.parametrize(
    "ttl", [timedelta(0), timedelta(seconds=-1)], ids=["zero-ttl", "negative-ttl"]
)
def test_lock_needs_a_positive_ttl(repo: Repository, now: datetime, ttl: timedelta) -> None:
    with pytest.raises(InvalidRecordError, match="ttl"):
        repo.try_acquire_lock("job", "a", ttl, now)


def test_concurrent_acquirers_of_a_lock_have_one_winner(repo: Repository, now: datetime) -> None:
    results = _run_together(
        4, lambda i: repo.try_acquire_lock("singleton", f"replica-{i}", timedelta(minutes=1), now)
    )
    assert sorted(results) == [False, False, False, True]


# ----------------------------------------------------------------- concurrency


def test_concurrent_issuance_batches_keep_one_unforked_chain(
    repo: Repository, db_url: str, now: datetime
) -> None:
    """Threads on one repository and on a second one (another replica) append at once."""
    threads, batches, size = 4, 4, 8
    with Repository.open(db_url) as replica:

        def work(index: int) -> list[int]:
            target = repo if index % 2 == 0 else replica
            seqs: list[int] = []
            for b in range(batches):
                start = 1 + (index * batches + b) * size
                events = target.record_issuances(batch(start, size, now))
                seqs.extend(e.seq for e in events)
            return seqs

        per_thread = _run_together(threads, work)

    total = threads * batches * size
    all_seqs = sorted(seq for seqs in per_thread for seq in seqs)
    assert all_seqs == list(range(1, total + 1))
    for seqs in per_thread:  # each batch got consecutive numbers
        for b in range(batches):
            chunk = seqs[b * size : (b + 1) * size]
            assert chunk == list(range(chunk[0], chunk[0] + size))
    assert len(repo.list_certificates(limit=total)) == total
    assert repo.verify_audit_chain().checked == total
    assert repo.verify_audit_chain().ok


def test_concurrent_revocations_of_one_certificate_have_one_winner(
    repo: Repository, now: datetime
) -> None:
    repo.record_issuances([issuance(1, now)])

    def revoke(i: int) -> str:
        try:
            repo.revoke_certificate(f"{1:032x}", f"reason-{i}", now)
        except ConflictError:
            return "conflict"
        return "revoked"

    assert sorted(_run_together(4, revoke)) == ["conflict"] * 3 + ["revoked"]
    assert [e.action for e in repo.list_audit()] == ["issue", "revoke"]
    assert repo.verify_audit_chain().ok


# ---------------------------------------------------------------- availability


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def unreachable_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'no-such-dir' / 'citadel.db'}"
    request.getfixturevalue("postgres_server")  # the peer must exist for a fair test
    return f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/citadel"


def test_unreachable_database_is_unavailable(unreachable_url: str) -> None:
    with pytest.raises(StoreUnavailableError, match="database unavailable"):
        Repository.open(unreachable_url)


def test_read_only_sqlite_database_serves_reads_and_refuses_writes(
    tmp_path: Path, now: datetime
) -> None:
    path = tmp_path / "citadel.db"
    with Repository.open(f"sqlite:///{path}") as writable:
        writable.record_issuances([issuance(1, now)])
    with Repository.open(f"sqlite:///file:{path}?mode=ro&uri=true", auto_upgrade=False) as ro:
        assert ro.get_certificate(f"{1:032x}").serial_hex == f"{1:032x}"
        with pytest.raises(StoreUnavailableError, match="readonly"):
            ro.record_issuances([issuance(2, now)])
        with pytest.raises(StoreUnavailableError):
            ro.try_acquire_lock("job", "a", timedelta(minutes=1), now)
        assert ro.verify_audit_chain().ok


def test_locked_sqlite_database_is_unavailable_after_the_busy_timeout(
    tmp_path: Path, now: datetime
) -> None:
    import sqlite3

    path = tmp_path / "citadel.db"
    options = EngineOptions(busy_timeout=timedelta(milliseconds=200))
    with Repository.open(f"sqlite:///{path}", options=options) as repository:
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreUnavailableError, match="locked"):
                repository.record_issuances([issuance(1, now)])
            assert repository.list_certificates() == []  # WAL: readers are not blocked
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        repository.record_issuances([issuance(1, now)])
        assert repository.verify_audit_chain().ok


@pytest.mark.slow
def test_stopped_postgres_is_unavailable_and_the_repository_recovers(now: datetime) -> None:
    with running_postgres() as server, Repository.open(server.url()) as repository:
        repository.record_issuances([issuance(1, now)])
        stop_postgres(server, remove=False)
        with pytest.raises(StoreUnavailableError):
            repository.ping()
        with pytest.raises(StoreUnavailableError):
            repository.record_issuances([issuance(2, now)])
        with pytest.raises(StoreUnavailableError):
            repository.get_certificate(f"{1:032x}")
        restart_postgres(server)
        repository.record_issuances([issuance(2, now)])
        assert len(repository.list_certificates()) == 2
        assert repository.verify_audit_chain().ok


_ISSUING_PROCESS = """
import sys, time
from datetime import datetime
from citadel.store import Repository
from tests.integration.store.builders import batch

url, first, batches, size, start_at = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5])
now = datetime.fromisoformat(sys.argv[6])
with Repository.open(url) as repository:
    time.sleep(max(0.0, start_at - time.time()))
    for b in range(batches):
        repository.record_issuances(batch(first + b * size, size, now))
"""


def test_issuing_processes_share_one_unforked_chain(
    repo: Repository, db_url: str, now: datetime
) -> None:
    """Separate processes (like CA replicas) append at the same time."""
    processes, batches, size = 2, 6, 8
    start_at = time.time() + 3  # both are importing by then; then they race
    root = Path(__file__).resolve().parents[3]
    children = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _ISSUING_PROCESS,
                db_url,
                str(1 + p * batches * size),
                str(batches),
                str(size),
                str(start_at),
                now.isoformat(),
            ],
            cwd=root,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(processes)
    ]
    for child in children:
        _, stderr = child.communicate(timeout=THREAD_WAIT_S)
        assert child.returncode == 0, stderr[-2000:]
    total = processes * batches * size
    assert [e.seq for e in repo.list_audit(limit=total + 1)] == list(range(1, total + 1))
    result = repo.verify_audit_chain()
    assert (result.ok, result.checked) == (True, total)
