"""Reading bearer tokens from call metadata."""

from __future__ import annotations

from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError

__all__ = ["JOIN_TOKEN_PREFIX", "MAX_TOKEN_BYTES", "bearer_token"]

MAX_TOKEN_BYTES = 16 * 1024
JOIN_TOKEN_PREFIX = "jt."  # noqa: S105 - a marker, not a secret


def bearer_token(call: CallContext, *, authenticator: str) -> str | None:
    """The token of an ``authorization: Bearer <token>`` header, or None.

    Raises:
        CredentialRejectedError: several authorization headers, an empty or oversized token.
    """
    headers = call.values("authorization")
    if not headers:
        return None
    if len(headers) > 1:
        raise CredentialRejectedError(
            "more than one authorization header", authenticator=authenticator
        )
    scheme, _, token = headers[0].strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    if not token:
        raise CredentialRejectedError("empty bearer token", authenticator=authenticator)
    if len(token) > MAX_TOKEN_BYTES:
        raise CredentialRejectedError("bearer token is too large", authenticator=authenticator)
    return token
