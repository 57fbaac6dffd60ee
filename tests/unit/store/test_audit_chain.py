"""The audit chain's encoding, hash formula and verifier, without a database."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from citadel.store.audit_chain import (
    GENESIS_HASH,
    StoredEvent,
    StoredHead,
    canonical_json,
    certificate_row_digest,
    event_hash,
    issuance_payload,
    revocation_payload,
    verify_chain,
)
from citadel.store.records import IssuanceInput, IssuedCertificateRecord

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _issued(n: int, **overrides: Any) -> IssuedCertificateRecord:
    record = IssuedCertificateRecord(
        serial_hex=f"{n:04x}",
        spiffe_id=f"spiffe://td/w{n}",
        not_before=NOW,
        not_after=NOW + timedelta(hours=1),
        fingerprint_sha256=f"{n:064x}",
        issuer_fingerprint="ab" * 32,
        requester="r",
        metadata={"k": "v"},
        certificate_pem=f"PEM{n}",
        issued_at=NOW,
    )
    return replace(record, **overrides)


def _as_input(cert: IssuedCertificateRecord) -> IssuanceInput:
    fields = {k: v for k, v in vars(cert).items() if k not in ("revoked_at", "revocation_reason")}
    return IssuanceInput(**fields)


def _chain(payloads: list[dict[str, Any]]) -> tuple[list[StoredEvent], StoredHead]:
    events: list[StoredEvent] = []
    prev = GENESIS_HASH
    for seq, payload in enumerate(payloads, start=1):
        digest = event_hash(
            prev_hash=prev, seq=seq, at=NOW, action="act", subject="subj", payload=payload
        )
        events.append(
            StoredEvent(
                seq=seq,
                at=NOW,
                action="act",
                subject="subj",
                payload_json=canonical_json(payload),
                prev_hash=prev,
                hash=digest,
            )
        )
        prev = digest
    return events, StoredHead(last_seq=len(events), last_hash=prev)


@pytest.fixture
def certs() -> list[IssuedCertificateRecord]:
    return [_issued(1), _issued(2, revoked_at=NOW, revocation_reason="keyCompromise")]


@pytest.fixture
def chain(certs: list[IssuedCertificateRecord]) -> tuple[list[StoredEvent], StoredHead]:
    return _chain(
        [
            issuance_payload(_as_input(certs[0])),
            issuance_payload(_as_input(certs[1])),
            {"note": "rotation"},
            revocation_payload(
                serial_hex=certs[1].serial_hex,
                spiffe_id=certs[1].spiffe_id,
                reason="keyCompromise",
                revoked_at=NOW,
            ),
        ]
    )


def test_genesis_hash_is_sixty_four_zeros() -> None:
    assert GENESIS_HASH == "0" * 64


def test_canonical_json_sorts_keys_escapes_non_ascii_and_has_no_spaces() -> None:
    assert canonical_json({"b": 1, "a": ["é", None]}) == '{"a":["\\u00e9",null],"b":1}'


def test_canonical_json_writes_aware_datetimes_as_utc_iso() -> None:
    plus_two = timezone(timedelta(hours=2))
    at = datetime(2026, 6, 1, 14, 0, 0, 5, tzinfo=plus_two)
    assert canonical_json({"at": at}) == '{"at":"2026-06-01T12:00:00.000005+00:00"}'


@pytest.mark.parametrize(
    ("value", "error"),
    [(float("nan"), ValueError), (datetime(2026, 1, 1), TypeError), ({1}, TypeError)],
    ids=["nan", "naive-datetime", "set"],
)
def test_canonical_json_refuses_values_that_do_not_round_trip(
    value: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        canonical_json({"v": value})


def test_event_hash_is_sha256_of_prev_hash_newline_canonical_body() -> None:
    body = json.dumps(
        {
            "action": "a",
            "at": "2026-06-01T12:00:00+00:00",
            "payload": {"x": 1},
            "seq": 7,
            "subject": "s",
        },
        separators=(",", ":"),
        sort_keys=True,
    )
    expected = hashlib.sha256(("f" * 64 + "\n" + body).encode()).hexdigest()
    assert (
        event_hash(prev_hash="f" * 64, seq=7, at=NOW, action="a", subject="s", payload={"x": 1})
        == expected
    )


def test_certificate_digest_changes_with_every_immutable_field() -> None:
    base = _issued(1)
    changed = [
        replace(base, spiffe_id="spiffe://td/other"),
        replace(base, certificate_pem="PEM-other"),
        replace(base, metadata={"k": "w"}),
        replace(base, not_after=NOW + timedelta(hours=2)),
        replace(base, requester="someone"),
        replace(base, issuer_fingerprint="cd" * 32),
    ]
    digests = {certificate_row_digest(c) for c in changed}
    assert certificate_row_digest(base) not in digests
    assert len(digests) == len(changed)
    assert certificate_row_digest(replace(base, revoked_at=NOW)) == certificate_row_digest(base)


def test_consistent_chain_and_certificates_verify(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    result = verify_chain(events, head, certs)
    assert (result.ok, result.checked, result.first_bad_seq, result.problem) == (
        True,
        4,
        None,
        None,
    )


def test_edited_event_is_reported_at_its_seq(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    events[2] = replace(events[2], action="forged")
    result = verify_chain(events, head, certs)
    assert (result.ok, result.checked, result.first_bad_seq) == (False, 2, 3)
    assert result.problem == (
        "audit event seq 3: the stored hash does not match the event's content: "
        "the event was edited or moved"
    )


def test_edited_event_with_recomputed_hash_breaks_the_next_link(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    forged = replace(events[1], subject="forged")
    events[1] = replace(
        forged,
        hash=event_hash(
            prev_hash=forged.prev_hash,
            seq=2,
            at=NOW,
            action=forged.action,
            subject="forged",
            payload=json.loads(forged.payload_json),
        ),
    )
    result = verify_chain(events, head, certs)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.problem is not None and "prev_hash does not link" in result.problem


def test_non_canonical_payload_text_is_reported(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    events[2] = replace(events[2], payload_json='{"note": "rotation"}')
    result = verify_chain(events, head, certs)
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert result.problem is not None and "not canonical" in result.problem


def test_unparseable_payload_is_reported(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    events[0] = replace(events[0], payload_json="{not json")
    result = verify_chain(events, head, certs)
    assert (result.ok, result.first_bad_seq, result.problem) == (
        False,
        1,
        "audit event seq 1: payload is not JSON",
    )


def test_gap_in_sequence_is_reported_at_the_missing_seq(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    del events[1]
    result = verify_chain(events, head, certs)
    assert (result.ok, result.checked, result.first_bad_seq) == (False, 1, 2)


def test_swapped_events_are_reported(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    events[1], events[2] = replace(events[2], seq=2), replace(events[1], seq=3)
    assert verify_chain(events, head, certs).first_bad_seq == 2


def test_missing_tail_is_reported_against_the_head(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    result = verify_chain(events[:-1], head, certs)
    assert (result.ok, result.checked, result.first_bad_seq) == (False, 3, 4)
    assert result.problem is not None and "deleted from the tail" in result.problem


def test_head_behind_the_events_is_reported(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    result = verify_chain(events, replace(head, last_seq=3), certs)
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_head_with_a_different_hash_is_reported(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    result = verify_chain(events, replace(head, last_hash="1" * 64), certs)
    assert (result.ok, result.first_bad_seq) == (False, 4)


def test_missing_head_is_reported(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, _ = chain
    result = verify_chain(events, None, certs)
    assert (result.ok, result.problem) == (False, "the audit head row is missing")


def test_empty_chain_with_genesis_head_verifies() -> None:
    result = verify_chain([], StoredHead(last_seq=0, last_hash=GENESIS_HASH), [])
    assert (result.ok, result.checked) == (True, 0)


@pytest.mark.parametrize(
    ("edit", "first_bad_seq", "phrase"),
    [
        ({"spiffe_id": "spiffe://td/admin"}, 1, "was edited"),
        ({"metadata": {"k": "forged"}}, 1, "was edited"),
        ({"revoked_at": NOW}, None, "no revocation event"),
    ],
    ids=["edited-spiffe-id", "edited-metadata", "revoked-without-event"],
)
def test_certificate_row_that_disagrees_with_the_chain_is_reported(
    chain: tuple[list[StoredEvent], StoredHead],
    certs: list[IssuedCertificateRecord],
    edit: dict[str, Any],
    first_bad_seq: int | None,
    phrase: str,
) -> None:
    events, head = chain
    certs[0] = replace(certs[0], **edit)
    result = verify_chain(events, head, certs)
    assert (result.ok, result.checked, result.first_bad_seq) == (False, 4, first_bad_seq)
    assert result.problem is not None and phrase in result.problem


@pytest.mark.parametrize(
    ("edit", "phrase"),
    [
        ({"revoked_at": None, "revocation_reason": None}, "no longer revoked"),
        ({"revocation_reason": "superseded"}, "differs from event seq 4"),
        ({"revoked_at": NOW + timedelta(seconds=1)}, "differs from event seq 4"),
    ],
    ids=["unrevoked", "reason-changed", "time-changed"],
)
def test_revocation_that_disagrees_with_the_chain_is_reported(
    chain: tuple[list[StoredEvent], StoredHead],
    certs: list[IssuedCertificateRecord],
    edit: dict[str, Any],
    phrase: str,
) -> None:
    events, head = chain
    certs[1] = replace(certs[1], **edit)
    result = verify_chain(events, head, certs)
    assert (result.ok, result.first_bad_seq) == (False, 4)
    assert result.problem is not None and phrase in result.problem


def test_deleted_certificate_row_is_reported_at_its_issuance_event(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    result = verify_chain(events, head, certs[:1])
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert result.problem is not None and "was deleted" in result.problem


def test_lowest_seq_wins_among_several_certificate_problems(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    edited = [replace(certs[1], requester="x"), _issued(9), replace(certs[0], requester="y")]
    assert verify_chain(events, head, edited).first_bad_seq == 1


def test_events_are_consumed_lazily_and_stop_at_the_first_problem(
    chain: tuple[list[StoredEvent], StoredHead], certs: list[IssuedCertificateRecord]
) -> None:
    events, head = chain
    events[0] = replace(events[0], subject="edited")
    consumed: list[int] = []

    def stream() -> Any:
        for event in events:
            consumed.append(event.seq)
            yield event

    assert not verify_chain(stream(), head, certs).ok
    assert consumed == [1]
