"""Errors of the authz layer.

Every class sets ``kind``: a short label used as the metric label and as the key of the
status mapping in :mod:`citadel.authz.grpc_status`. Messages may name issuers, SPIFFE IDs,
key IDs and policy names; they never contain a token or a PEM.

    AuthzError
    ├── PolicyError                  invalid policy document (names the file and the field)
    ├── JwksError                    a JWKS document is malformed (load/refresh time)
    ├── AuthenticationError          → UNAUTHENTICATED / 401
    │   ├── MissingTokenError        a required JWT is absent
    │   ├── JwksUnavailableError     the keys were never fetched: fail closed
    │   ├── InvalidPeerError         the peer identity is not a usable SPIFFE ID
    │   └── TokenError               the JWT is invalid
    │       ├── TokenMalformedError, TokenTooLargeError, AmbiguousTokenError
    │       ├── TokenAlgorithmError, UnknownKeyError, TokenSignatureError
    │       ├── TokenExpiredError, TokenNotYetValidError
    │       └── TokenIssuerError, TokenAudienceError, TokenClaimError
    └── AccessDeniedError            → PERMISSION_DENIED / 403
        ├── DeniedByPolicyError      a DENY rule matched
        ├── NoAllowMatchError        ALLOW policies apply and none matched
        ├── DefaultDenyError         no policy applies and the default is deny
        └── ForeignTrustDomainError  the peer is outside the accepted trust domains
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from citadel.errors import CitadelError

if TYPE_CHECKING:
    from citadel.authz.decision import Decision

__all__ = [
    "AccessDeniedError",
    "AmbiguousTokenError",
    "AuthenticationError",
    "AuthzError",
    "DefaultDenyError",
    "DeniedByPolicyError",
    "ForeignTrustDomainError",
    "InvalidPeerError",
    "JwksError",
    "JwksUnavailableError",
    "MissingTokenError",
    "NoAllowMatchError",
    "PolicyError",
    "TokenAlgorithmError",
    "TokenAudienceError",
    "TokenClaimError",
    "TokenError",
    "TokenExpiredError",
    "TokenIssuerError",
    "TokenMalformedError",
    "TokenNotYetValidError",
    "TokenSignatureError",
    "TokenTooLargeError",
    "UnknownKeyError",
]


class AuthzError(CitadelError):
    kind = "authz_error"


class PolicyError(AuthzError, ValueError):
    """A policy document is invalid.

    Attributes:
        source: the file (or other origin) the document came from.
        field: the dotted path of the offending field (``spec.rules[0].from``), or ``""``.
    """

    kind = "invalid_policy"

    def __init__(self, source: str, field: str, problem: str) -> None:
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")
        self.source = source
        self.field = field
        self.problem = problem


class JwksError(AuthzError, ValueError):
    """A JWKS (or SPIFFE JWT bundle) document is malformed."""

    kind = "invalid_jwks"


class AuthenticationError(AuthzError):
    kind = "unauthenticated"


class MissingTokenError(AuthenticationError):
    kind = "token_missing"


class JwksUnavailableError(AuthenticationError):
    """The verification keys could not be obtained; tokens are rejected (fail closed)."""

    kind = "jwks_unavailable"


class InvalidPeerError(AuthenticationError):
    """The peer presented an identity that is not one usable SPIFFE ID."""

    kind = "invalid_peer"


class TokenError(AuthenticationError):
    kind = "token_invalid"


class TokenMalformedError(TokenError):
    kind = "token_malformed"


class TokenTooLargeError(TokenError):
    kind = "token_too_large"


class AmbiguousTokenError(TokenError):
    """The request carries more than one token (repeated or merged headers)."""

    kind = "token_ambiguous"


class TokenAlgorithmError(TokenError):
    kind = "token_bad_algorithm"


class UnknownKeyError(TokenError):
    kind = "token_unknown_kid"


class TokenSignatureError(TokenError):
    kind = "token_bad_signature"


class TokenExpiredError(TokenError):
    kind = "token_expired"


class TokenNotYetValidError(TokenError):
    kind = "token_not_yet_valid"


class TokenIssuerError(TokenError):
    kind = "token_bad_issuer"


class TokenAudienceError(TokenError):
    kind = "token_bad_audience"


class TokenClaimError(TokenError):
    """A claim is missing or has the wrong JSON type."""

    kind = "token_bad_claim"


class AccessDeniedError(AuthzError):
    """The request is authenticated but not allowed.

    Attributes:
        decision: the engine's decision, when one was made (it explains the denial).
    """

    kind = "permission_denied"

    def __init__(self, message: str, decision: Decision | None = None) -> None:
        super().__init__(message)
        self.decision = decision


class DeniedByPolicyError(AccessDeniedError):
    kind = "denied_by_policy"


class NoAllowMatchError(AccessDeniedError):
    kind = "no_allow_match"


class DefaultDenyError(AccessDeniedError):
    kind = "default_deny"


class ForeignTrustDomainError(AccessDeniedError):
    kind = "foreign_trust_domain"
