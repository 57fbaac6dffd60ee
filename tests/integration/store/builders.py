"""Builders of valid store records for the store tests; override any field by keyword."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from citadel.store import AuthorityRecord, IssuanceInput


def issuance(n: int, now: datetime, **overrides: Any) -> IssuanceInput:
    base = IssuanceInput(
        serial_hex=f"{n:032x}",
        spiffe_id=f"spiffe://example.org/ns/default/sa/workload-{n}",
        not_before=now - timedelta(minutes=2),
        not_after=now + timedelta(hours=24),
        fingerprint_sha256=f"{n:064x}",
        issuer_fingerprint="ab" * 32,
        requester="spiffe://example.org/ns/default/sa/requester",
        metadata={"cluster": "c1"},
        certificate_pem=f"-----BEGIN CERTIFICATE-----\nMII{n}\n-----END CERTIFICATE-----\n",
        issued_at=now,
    )
    return replace(base, **overrides)


def batch(start: int, count: int, now: datetime) -> list[IssuanceInput]:
    return [issuance(n, now) for n in range(start, start + count)]


def authority(authority_id: str, now: datetime, **overrides: Any) -> AuthorityRecord:
    base = AuthorityRecord(
        id=authority_id,
        kind="intermediate",
        state="prepared",
        certificate_pem="-----BEGIN CERTIFICATE-----\nMIIroot\n-----END CERTIFICATE-----\n",
        key_ref=f"file:keys/{authority_id}.pem",
        serial_hex="0f" * 16,
        fingerprint_sha256="cd" * 32,
        parent_id=None,
        not_before=now,
        not_after=now + timedelta(days=365),
        created_at=now,
    )
    return replace(base, **overrides)
