"""The audit hash chain: canonical encoding, hashing, and verification (pure functions).

Each event's hash covers its predecessor's hash and its own content::

    hash = sha256(prev_hash + "\\n" + canonical_json(
        {"seq": seq, "at": at_iso, "action": action, "subject": subject, "payload": payload}))

The first event's ``prev_hash`` is :data:`GENESIS_HASH` (64 zeros). ``canonical_json`` sorts
keys, uses no whitespace and escapes non-ASCII, so the text is byte-for-byte reproducible.

Issuance and revocation events carry the reserved payload key :data:`RESERVED_PAYLOAD_KEY`,
which lets :func:`verify_chain` cross-check the ``issued_certificates`` rows against the
chain: an issuance event holds the SHA-256 of the certificate row's immutable fields, and a
revocation event holds the revocation time and reason.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from citadel.store.records import AuditVerification, IssuanceInput, IssuedCertificateRecord

__all__ = [
    "GENESIS_HASH",
    "ISSUED",
    "RESERVED_PAYLOAD_KEY",
    "REVOKED",
    "IssuanceTexts",
    "StoredEvent",
    "StoredHead",
    "canonical_json",
    "certificate_row_digest",
    "event_hash",
    "event_hash_of_json",
    "isoformat_utc",
    "issuance_payload",
    "issuance_texts",
    "revocation_payload",
    "verify_chain",
]

GENESIS_HASH: Final = "0" * 64
RESERVED_PAYLOAD_KEY: Final = "store_record"
ISSUED: Final = "issued"
REVOKED: Final = "revoked"


def isoformat_utc(value: datetime) -> str:
    """ISO 8601 in UTC with an explicit ``+00:00`` offset (microseconds when non-zero)."""
    return value.astimezone(UTC).isoformat()


def _json_default(value: object) -> str:
    if isinstance(value, datetime) and value.tzinfo is not None:
        return isoformat_utc(value)
    raise TypeError(f"audit payload value of type {type(value).__name__} is not JSON")


# One encoder for every call: json.dumps with these options would build a new one each time.
_CANONICAL = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=True,
    allow_nan=False,
    default=_json_default,
)
# The encoder's own string encoder (ensure_ascii=True), for assembling canonical text.
_json_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


def canonical_json(value: object) -> str:
    """Deterministic JSON: sorted keys, no spaces, ASCII only, no NaN; aware datetimes as
    UTC ISO strings.

    Raises:
        TypeError: a value is not representable (naive datetimes, sets, objects).
        ValueError: NaN or infinity.
    """
    return _CANONICAL.encode(value)


def event_hash(
    *,
    prev_hash: str,
    seq: int,
    at: datetime,
    action: str,
    subject: str,
    payload: Mapping[str, Any],
) -> str:
    return event_hash_of_json(
        prev_hash=prev_hash,
        seq=seq,
        at_iso=isoformat_utc(at),
        action=action,
        subject=subject,
        payload_json=canonical_json(payload),
    )


def event_hash_of_json(
    *, prev_hash: str, seq: int, at_iso: str, action: str, subject: str, payload_json: str
) -> str:
    """:func:`event_hash` from the payload's canonical JSON and the time's ISO text.

    The body is assembled in canonical key order (action, at, payload, seq, subject), which
    is exactly the text :func:`canonical_json` gives for the event dict, without encoding the
    payload a second time.
    """
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise TypeError("seq must be an int")
    body = (
        f'{{"action":{_json_string(action)},"at":{_json_string(at_iso)},'
        f'"payload":{payload_json},"seq":{seq:d},"subject":{_json_string(subject)}}}'
    )
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def certificate_row_digest(cert: IssuanceInput | IssuedCertificateRecord) -> str:
    """SHA-256 over every immutable field of an issued certificate row."""
    metadata = dict(cert.metadata)
    fields = {
        "serial_hex": cert.serial_hex,
        "spiffe_id": cert.spiffe_id,
        "not_before": isoformat_utc(cert.not_before),
        "not_after": isoformat_utc(cert.not_after),
        "fingerprint_sha256": cert.fingerprint_sha256,
        "issuer_fingerprint": cert.issuer_fingerprint,
        "requester": cert.requester,
        "metadata": metadata,
        "certificate_pem": cert.certificate_pem,
        "issued_at": isoformat_utc(cert.issued_at),
    }
    if _all_text(cert) and all(type(k) is str and type(v) is str for k, v in metadata.items()):
        body = _row_json(cert, fields, _string_map_json(metadata))
    else:  # not a stored row (tests, odd callers): let the encoder decide
        body = canonical_json(fields)
    return hashlib.sha256(body.encode()).hexdigest()


def _all_text(cert: IssuanceInput | IssuedCertificateRecord) -> bool:
    return (
        type(cert.serial_hex) is str
        and type(cert.spiffe_id) is str
        and type(cert.fingerprint_sha256) is str
        and type(cert.issuer_fingerprint) is str
        and type(cert.requester) is str
        and type(cert.certificate_pem) is str
    )


def _row_json(
    cert: IssuanceInput | IssuedCertificateRecord, fields: Mapping[str, Any], metadata_json: str
) -> str:
    """``canonical_json(fields)`` of a row whose fields are all text (``metadata`` given as
    its canonical JSON), written out in canonical (sorted) key order."""
    q = _json_string
    return (
        f'{{"certificate_pem":{q(cert.certificate_pem)},'
        f'"fingerprint_sha256":{q(cert.fingerprint_sha256)},'
        f'"issued_at":{q(fields["issued_at"])},'
        f'"issuer_fingerprint":{q(cert.issuer_fingerprint)},'
        f'"metadata":{metadata_json},'
        f'"not_after":{q(fields["not_after"])},'
        f'"not_before":{q(fields["not_before"])},'
        f'"requester":{q(cert.requester)},'
        f'"serial_hex":{q(cert.serial_hex)},'
        f'"spiffe_id":{q(cert.spiffe_id)}}}'
    )


def _string_map_json(mapping: Mapping[str, str]) -> str:
    """``canonical_json`` of a mapping of text to text (anything else goes to the encoder)."""
    if not mapping:
        return "{}"
    items = sorted(mapping.items())
    if not all(type(key) is str and type(value) is str for key, value in items):
        return canonical_json(dict(mapping))
    q = _json_string
    return "{" + ",".join([f"{q(key)}:{q(value)}" for key, value in items]) + "}"


class IssuanceTexts(NamedTuple):
    """The canonical text of one issuance, each piece encoded once.

    Attributes:
        payload: the issuance event payload (:func:`issuance_payload`).
        payload_json: ``canonical_json(payload)``, as stored and hashed.
        metadata_json: ``canonical_json(metadata)``, the certificate row's metadata column.
        issued_at_iso: the event time as hashed (:func:`isoformat_utc`).
    """

    payload: dict[str, str]
    payload_json: str
    metadata_json: str
    issued_at_iso: str


def issuance_texts(cert: IssuanceInput) -> IssuanceTexts:
    """Everything the issuance event and row need that does not depend on the chain.

    The texts are exactly what :func:`canonical_json` gives for :func:`issuance_payload`,
    the row fields and the metadata; when every field is text (as the repository ensures)
    they are written out in canonical key order instead of going through the general
    encoder (a unit test compares the two on arbitrary text).
    """
    if not _all_text(cert):
        payload = _issuance_payload(cert, certificate_row_digest(cert))
        metadata_json = canonical_json(dict(cert.metadata))
        return IssuanceTexts(
            payload, canonical_json(payload), metadata_json, isoformat_utc(cert.issued_at)
        )
    metadata_json = _string_map_json(cert.metadata)
    fields = {
        "not_before": isoformat_utc(cert.not_before),
        "not_after": isoformat_utc(cert.not_after),
        "issued_at": isoformat_utc(cert.issued_at),
    }
    row_json = _row_json(cert, fields, metadata_json)
    row_sha256 = hashlib.sha256(row_json.encode()).hexdigest()
    q = _json_string
    payload_json = (
        f'{{"fingerprint_sha256":{q(cert.fingerprint_sha256)},'
        f'"issuer_fingerprint":{q(cert.issuer_fingerprint)},'
        f'"not_after":{q(fields["not_after"])},'
        f'"row_sha256":"{row_sha256}",'
        f'"serial":{q(cert.serial_hex)},'
        f'"spiffe_id":{q(cert.spiffe_id)},'
        f'"{RESERVED_PAYLOAD_KEY}":"{ISSUED}"}}'
    )
    payload = _issuance_payload(cert, row_sha256, not_after_iso=fields["not_after"])
    return IssuanceTexts(payload, payload_json, metadata_json, fields["issued_at"])


def _issuance_payload(
    cert: IssuanceInput, row_sha256: str, *, not_after_iso: str | None = None
) -> dict[str, str]:
    return {
        RESERVED_PAYLOAD_KEY: ISSUED,
        "serial": cert.serial_hex,
        "spiffe_id": cert.spiffe_id,
        "fingerprint_sha256": cert.fingerprint_sha256,
        "not_after": not_after_iso or isoformat_utc(cert.not_after),
        "issuer_fingerprint": cert.issuer_fingerprint,
        "row_sha256": row_sha256,
    }


def issuance_payload(cert: IssuanceInput) -> dict[str, str]:
    return issuance_texts(cert).payload


def revocation_payload(
    *, serial_hex: str, spiffe_id: str, reason: str, revoked_at: datetime
) -> dict[str, str]:
    return {
        RESERVED_PAYLOAD_KEY: REVOKED,
        "serial": serial_hex,
        "spiffe_id": spiffe_id,
        "reason": reason,
        "revoked_at": isoformat_utc(revoked_at),
    }


@dataclass(frozen=True, kw_only=True)
class StoredEvent:
    """An ``audit_events`` row as stored, with its payload still as text."""

    seq: int
    at: datetime
    action: str
    subject: str
    payload_json: str
    prev_hash: str
    hash: str


@dataclass(frozen=True, kw_only=True)
class StoredHead:
    """The ``audit_head`` row: the last appended sequence number and hash."""

    last_seq: int
    last_hash: str


class _Broken(Exception):
    def __init__(self, seq: int | None, problem: str) -> None:
        super().__init__(problem)
        self.seq = seq
        self.problem = problem


@dataclass(frozen=True)
class _Issued:
    seq: int
    row_sha256: str


@dataclass(frozen=True)
class _Revoked:
    seq: int
    reason: str
    revoked_at: str


class _ChainWalk:
    """Walks events in seq order and remembers what the certificate check needs."""

    def __init__(self) -> None:
        self.checked = 0
        self.last_seq = 0
        self.last_hash = GENESIS_HASH
        self.issued: dict[str, _Issued] = {}
        self.revoked: dict[str, _Revoked] = {}

    def add(self, event: StoredEvent) -> None:
        expected = self.last_seq + 1
        if event.seq != expected:
            if event.seq > expected:
                raise _Broken(
                    expected,
                    f"audit event seq {expected} is missing (the next stored event is seq "
                    f"{event.seq}): an event was deleted",
                )
            raise _Broken(event.seq, f"audit event seq {event.seq} is out of order")
        payload = _parse_payload(event)  # also proves payload_json is its canonical text
        recomputed = event_hash_of_json(
            prev_hash=event.prev_hash,
            seq=event.seq,
            at_iso=isoformat_utc(event.at),
            action=event.action,
            subject=event.subject,
            payload_json=event.payload_json,
        )
        if recomputed != event.hash:
            raise _Broken(
                event.seq,
                f"audit event seq {event.seq}: the stored hash does not match the event's "
                "content: the event was edited or moved",
            )
        if event.prev_hash != self.last_hash:
            raise _Broken(
                event.seq,
                f"audit event seq {event.seq}: prev_hash does not link to the hash of event "
                f"seq {self.last_seq}: events were removed, replaced or reordered",
            )
        self._remember(event.seq, payload)
        self.last_seq = event.seq
        self.last_hash = event.hash
        self.checked += 1

    def _remember(self, seq: int, payload: Mapping[str, Any]) -> None:
        record = payload.get(RESERVED_PAYLOAD_KEY)
        serial = payload.get("serial")
        if not isinstance(serial, str):
            return
        if record == ISSUED:
            self.issued[serial] = _Issued(seq, str(payload.get("row_sha256")))
        elif record == REVOKED:
            self.revoked[serial] = _Revoked(
                seq, str(payload.get("reason")), str(payload.get("revoked_at"))
            )

    def check_head(self, head: StoredHead | None) -> None:
        if head is None:
            raise _Broken(None, "the audit head row is missing")
        if head.last_seq > self.last_seq:
            raise _Broken(
                self.last_seq + 1,
                f"the audit head records seq {head.last_seq} but the last stored event is seq "
                f"{self.last_seq}: events were deleted from the tail",
            )
        if head.last_seq < self.last_seq:
            raise _Broken(
                head.last_seq + 1,
                f"the audit head records seq {head.last_seq} but events run to seq "
                f"{self.last_seq}: events were appended outside the repository",
            )
        if head.last_hash != self.last_hash:
            raise _Broken(
                self.last_seq or None,
                f"the audit head's hash does not match event seq {self.last_seq}: the last "
                "event was replaced",
            )


def _parse_payload(event: StoredEvent) -> Mapping[str, Any]:
    try:
        payload = json.loads(event.payload_json)
    except ValueError as exc:
        raise _Broken(event.seq, f"audit event seq {event.seq}: payload is not JSON") from exc
    if not isinstance(payload, dict) or canonical_json(payload) != event.payload_json:
        raise _Broken(
            event.seq, f"audit event seq {event.seq}: payload is not canonical JSON (edited)"
        )
    return payload


def _certificate_problems(
    walk: _ChainWalk, certificates: Iterable[IssuedCertificateRecord]
) -> list[tuple[int | None, str]]:
    problems: list[tuple[int | None, str]] = []
    unseen = dict(walk.issued)
    for cert in certificates:
        serial = cert.serial_hex
        issued = unseen.pop(serial, None)
        if issued is None:
            problems.append(
                (None, f"certificate {serial} has no issuance event in the audit chain")
            )
            continue
        if certificate_row_digest(cert) != issued.row_sha256:
            problems.append(
                (
                    issued.seq,
                    f"certificate {serial} differs from its issuance event seq {issued.seq}: "
                    "the certificate row was edited",
                )
            )
            continue
        problem = _revocation_problem(cert, walk.revoked.get(serial))
        if problem is not None:
            problems.append(problem)
    for serial, issued in unseen.items():
        problems.append(
            (
                issued.seq,
                f"certificate {serial} recorded by event seq {issued.seq} is missing from the "
                "issued certificates: the certificate row was deleted",
            )
        )
    return problems


def _revocation_problem(
    cert: IssuedCertificateRecord, revoked: _Revoked | None
) -> tuple[int | None, str] | None:
    serial = cert.serial_hex
    if revoked is None:
        if cert.revoked_at is None and cert.revocation_reason is None:
            return None
        return (None, f"certificate {serial} is marked revoked but no revocation event exists")
    if cert.revoked_at is None:
        return (
            revoked.seq,
            f"certificate {serial} was revoked by event seq {revoked.seq} but its row is no "
            "longer revoked",
        )
    if isoformat_utc(cert.revoked_at) != revoked.revoked_at or (
        cert.revocation_reason != revoked.reason
    ):
        return (
            revoked.seq,
            f"certificate {serial}: revocation time or reason differs from event seq {revoked.seq}",
        )
    return None


def verify_chain(
    events: Iterable[StoredEvent],
    head: StoredHead | None,
    certificates: Iterable[IssuedCertificateRecord],
) -> AuditVerification:
    """Check a whole audit chain and the certificate rows it vouches for.

    ``events`` must come in ascending ``seq`` order (as stored); both iterables are consumed
    lazily, once. The first problem found is reported; for certificate rows, the one with the
    lowest event seq.
    """
    walk = _ChainWalk()
    try:
        for event in events:
            walk.add(event)
        walk.check_head(head)
    except _Broken as broken:
        return AuditVerification(
            ok=False, checked=walk.checked, first_bad_seq=broken.seq, problem=broken.problem
        )
    problems = _certificate_problems(walk, certificates)
    if problems:
        seq, problem = min(problems, key=lambda item: (item[0] is None, item[0] or 0))
        return AuditVerification(ok=False, checked=walk.checked, first_bad_seq=seq, problem=problem)
    return AuditVerification(ok=True, checked=walk.checked, first_bad_seq=None, problem=None)
