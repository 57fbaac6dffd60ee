"""Read a JWT's claims WITHOUT verifying it.

Only for decisions that do not grant anything: whether a token is JWT-shaped at all, and
how long a positive TokenReview may be cached (``exp``). Never trust these claims.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any

__all__ = ["UnverifiedJwt", "peek_jwt"]


class UnverifiedJwt:
    def __init__(self, header: dict[str, Any], claims: dict[str, Any]) -> None:
        self.header = header
        self.claims = claims

    @property
    def expires_at(self) -> datetime | None:
        exp = self.claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            return None
        try:
            return datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            return None


def _segment(part: str) -> dict[str, Any]:
    padded = part + "=" * (-len(part) % 4)
    try:
        decoded = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ValueError("JWT segment is not base64url JSON") from exc
    if not isinstance(decoded, dict):
        raise ValueError("JWT segment is not a JSON object")
    return decoded


def peek_jwt(token: str) -> UnverifiedJwt:
    """Split a compact JWS and decode its header and claims.

    Raises:
        ValueError: the token is not three base64url JSON segments.
    """
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise ValueError("token is not a compact JWT")
    return UnverifiedJwt(_segment(parts[0]), _segment(parts[1]))
