"""One-time join tokens: creation and the hash under which they are stored.

A token is 32 random bytes, base64url without padding. Only its SHA-256 is stored; the
token itself is shown once, to the operator who created it. Callers present it as
``authorization: Bearer jt.<token>`` or in the ``citadel-join-token`` metadata key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from citadel.identity.clock import Clock
from citadel.identity.spiffe_id import SpiffeId

__all__ = [
    "JOIN_TOKEN_METADATA_KEY",
    "MAX_JOIN_TOKEN_TTL",
    "CreatedJoinToken",
    "JoinTokenWriter",
    "create_join_token",
    "hash_join_token",
    "is_well_formed_join_token",
]

JOIN_TOKEN_METADATA_KEY = "citadel-join-token"  # noqa: S105 - a header name
MAX_JOIN_TOKEN_TTL = timedelta(days=30)
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")


class JoinTokenWriter(Protocol):
    def create_join_token(
        self, token_hash: str, spiffe_id: str, created_at: datetime, expires_at: datetime
    ) -> object: ...

    def append_audit(
        self, action: str, subject: str, payload: Mapping[str, Any], at: datetime
    ) -> object: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class CreatedJoinToken:
    token: str
    token_hash: str
    spiffe_id: SpiffeId
    expires_at: datetime

    def __repr__(self) -> str:  # the token never appears in a repr or a log
        return (
            f"CreatedJoinToken(spiffe_id={self.spiffe_id}, hash={self.token_hash[:12]}…, "
            f"expires_at={self.expires_at.isoformat()})"
        )


def hash_join_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def is_well_formed_join_token(token: str) -> bool:
    return bool(_TOKEN_SHAPE.match(token))


def create_join_token(
    store: JoinTokenWriter, *, spiffe_id: SpiffeId, ttl: timedelta, clock: Clock
) -> CreatedJoinToken:
    """Create and store (hashed) a one-time token for ``spiffe_id``, and audit it.

    Raises:
        ValueError: the TTL is not positive or above :data:`MAX_JOIN_TOKEN_TTL`, or the
            SPIFFE ID has no path.
    """
    if ttl <= timedelta(0) or ttl > MAX_JOIN_TOKEN_TTL:
        raise ValueError(f"join token TTL must be positive and at most {MAX_JOIN_TOKEN_TTL}")
    if spiffe_id.is_trust_domain_id:
        raise ValueError("a join token must name a workload SPIFFE ID (with a path)")
    token = secrets.token_urlsafe(32)
    token_hash = hash_join_token(token)
    now = clock.now()
    expires_at = now + ttl
    store.create_join_token(token_hash, str(spiffe_id), now, expires_at)
    store.append_audit(
        "join_token_create",
        str(spiffe_id),
        {"token_sha256_prefix": token_hash[:12], "expires_at": expires_at.isoformat()},
        now,
    )
    return CreatedJoinToken(
        token=token, token_hash=token_hash, spiffe_id=spiffe_id, expires_at=expires_at
    )
