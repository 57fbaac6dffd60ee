"""The issuance write path builds its canonical texts and hashes directly, without the general
JSON encoder; these properties pin them to the documented formulas (canonical_json,
certificate_row_digest, event_hash) on arbitrary text, so the verifier keeps agreeing."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from citadel.store.audit_chain import (
    canonical_json,
    certificate_row_digest,
    event_hash,
    event_hash_of_json,
    isoformat_utc,
    issuance_payload,
    issuance_texts,
)
from citadel.store.records import IssuanceInput

PROPERTIES = settings(max_examples=300, deadline=None)

# Any text at all: non-ASCII, control characters, NUL, lone surrogates, quotes, backslashes.
texts = st.text(alphabet=st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=40)
zones = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
moments = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31), timezones=zones
)
issuances = st.builds(
    IssuanceInput,
    serial_hex=texts,
    spiffe_id=texts,
    not_before=moments,
    not_after=moments,
    fingerprint_sha256=texts,
    issuer_fingerprint=texts,
    requester=texts,
    metadata=st.dictionaries(texts, texts, max_size=4),
    certificate_pem=texts,
    issued_at=moments,
)


def _reference_row_json(cert: IssuanceInput) -> str:
    return canonical_json(
        {
            "serial_hex": cert.serial_hex,
            "spiffe_id": cert.spiffe_id,
            "not_before": isoformat_utc(cert.not_before),
            "not_after": isoformat_utc(cert.not_after),
            "fingerprint_sha256": cert.fingerprint_sha256,
            "issuer_fingerprint": cert.issuer_fingerprint,
            "requester": cert.requester,
            "metadata": dict(cert.metadata),
            "certificate_pem": cert.certificate_pem,
            "issued_at": isoformat_utc(cert.issued_at),
        }
    )


@PROPERTIES
@given(issuances)
def test_issuance_texts_are_the_canonical_json_of_payload_and_metadata(
    cert: IssuanceInput,
) -> None:
    texts_ = issuance_texts(cert)
    row_sha256 = hashlib.sha256(_reference_row_json(cert).encode()).hexdigest()
    assert certificate_row_digest(cert) == row_sha256
    assert texts_.payload["row_sha256"] == row_sha256
    assert texts_.payload == issuance_payload(cert)
    assert texts_.payload_json == canonical_json(texts_.payload)
    assert json.loads(texts_.payload_json) == texts_.payload
    assert texts_.metadata_json == canonical_json(dict(cert.metadata))
    assert texts_.issued_at_iso == isoformat_utc(cert.issued_at)


@PROPERTIES
@given(
    prev=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    seq=st.integers(min_value=1, max_value=2**62),
    at=moments,
    action=texts,
    subject=texts,
    payload=st.dictionaries(texts, st.one_of(texts, st.integers(), st.none()), max_size=4),
)
def test_event_hash_of_json_equals_event_hash(
    prev: str, seq: int, at: datetime, action: str, subject: str, payload: dict[str, object]
) -> None:
    assert event_hash_of_json(
        prev_hash=prev,
        seq=seq,
        at_iso=isoformat_utc(at),
        action=action,
        subject=subject,
        payload_json=canonical_json(payload),
    ) == event_hash(prev_hash=prev, seq=seq, at=at, action=action, subject=subject, payload=payload)


def test_row_digest_of_fields_that_are_not_text_still_uses_the_encoder() -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    odd = IssuanceInput(
        serial_hex=5,  # type: ignore[arg-type]
        spiffe_id="s",
        not_before=now,
        not_after=now,
        fingerprint_sha256="f",
        issuer_fingerprint="i",
        requester="r",
        metadata={"k": "v"},
        certificate_pem="p",
        issued_at=now,
    )
    expected = hashlib.sha256(_reference_row_json(odd).encode()).hexdigest()
    assert certificate_row_digest(odd) == expected
    assert issuance_texts(odd).payload_json == canonical_json(issuance_payload(odd))
