"""Errors of JWT-SVID minting input checks and validation.

    IdentityError
    └── InvalidJwtSvidError      "invalid_jwt_svid"   malformed, oversized, bad header/claims
        ├── JwtAlgorithmError    "jwt_algorithm"      alg missing, not allowed, not the key's
        ├── UnknownJwtKeyError   "jwt_unknown_key"    kid missing or not in the trust bundle
        ├── JwtSignatureError    "jwt_bad_signature"  the signature does not verify
        ├── JwtAudienceError     "jwt_audience"       aud missing or without our audience
        └── JwtSvidExpiredError  "jwt_expired"        exp past (or nbf/iat in the future)

Messages name the rule that failed; they never contain the token.
"""

from __future__ import annotations

from citadel.identity.errors import IdentityError

__all__ = [
    "InvalidJwtSvidError",
    "JwtAlgorithmError",
    "JwtAudienceError",
    "JwtSignatureError",
    "JwtSvidExpiredError",
    "UnknownJwtKeyError",
]


class InvalidJwtSvidError(IdentityError, ValueError):
    """A token is not a valid JWT-SVID for this validator."""

    kind = "invalid_jwt_svid"


class JwtAlgorithmError(InvalidJwtSvidError):
    kind = "jwt_algorithm"


class UnknownJwtKeyError(InvalidJwtSvidError):
    kind = "jwt_unknown_key"


class JwtSignatureError(InvalidJwtSvidError):
    kind = "jwt_bad_signature"


class JwtAudienceError(InvalidJwtSvidError):
    kind = "jwt_audience"


class JwtSvidExpiredError(InvalidJwtSvidError):
    kind = "jwt_expired"
