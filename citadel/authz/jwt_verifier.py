"""JWT verification: the public API shared by the authz layer and the CA's OIDC authenticator.

    verifier = JwtVerifier(JwtVerifierConfig(issuer=..., audiences=frozenset({...})),
                           jwks=UrlJwks(...), clock=clock)
    token = verifier.verify(raw)          # -> VerifiedJwt, or raises a TokenError

Checks, in order (each failure raises the named :mod:`citadel.authz.errors` class):
    size ≤ ``max_token_bytes`` (TokenTooLarge); three base64url parts with a JSON header
    (TokenMalformed); ``alg`` in the allow-list RS/PS/ES 256/384/512 — never ``none`` or
    HS* — ``typ`` absent or in ``token_types``, no ``crit`` (TokenAlgorithm, TokenMalformed);
    ``kid``
    present and known (UnknownKey, or JwksUnavailable when the keys are missing); ``alg``
    consistent with the key type, curve and the JWK's own ``alg`` (TokenAlgorithm);
    signature (TokenSignature); claim types (TokenClaim); ``iss`` (TokenIssuer); ``aud``
    (TokenAudience); ``exp``/``nbf``/``iat`` against the injected clock with ``leeway``
    (TokenExpired / TokenNotYetValid).

PyJWT checks only the signature here: every time check uses the injected clock.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from citadel.authz.errors import (
    TokenAlgorithmError,
    TokenAudienceError,
    TokenClaimError,
    TokenExpiredError,
    TokenIssuerError,
    TokenMalformedError,
    TokenNotYetValidError,
    TokenSignatureError,
    TokenTooLargeError,
)
from citadel.authz.jwk_set import ALLOWED_ALGORITHMS, JwkKey, JwksSource
from citadel.identity.clock import Clock

__all__ = ["ALLOWED_ALGORITHMS", "JwtVerifier", "JwtVerifierConfig", "VerifiedJwt", "peek_issuer"]

_EC_ALG_CURVE = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_MAX_LEEWAY = timedelta(minutes=5)


@dataclass(frozen=True, kw_only=True)
class JwtVerifierConfig:
    """What a valid token must satisfy.

    Attributes:
        issuer: the exact ``iss``.
        audiences: the token must name at least one of these in ``aud`` (required, non-empty).
        leeway: clock skew allowed on exp/nbf/iat (at most 5 minutes).
        max_token_bytes: larger tokens are rejected before any parsing.
        algorithms: the accepted ``alg`` values; a subset of :data:`ALLOWED_ALGORITHMS`.
        require_subject: require a non-empty string ``sub``.
        token_types: accepted ``typ`` header values (upper case; an absent ``typ`` is
            accepted). JWT-SVIDs use JWT or JOSE; add ``AT+JWT`` for OAuth access tokens.
    """

    issuer: str
    audiences: frozenset[str]
    leeway: timedelta = timedelta(seconds=30)
    max_token_bytes: int = 8192
    algorithms: frozenset[str] = ALLOWED_ALGORITHMS
    require_subject: bool = True
    token_types: frozenset[str] = frozenset({"JWT", "JOSE"})

    def __post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise ValueError("issuer must be a non-empty string")
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise ValueError("audiences must be a non-empty set of non-empty strings")
        if not timedelta(0) <= self.leeway <= _MAX_LEEWAY:
            raise ValueError("leeway must be between 0 and 5 minutes")
        if self.max_token_bytes < 64:
            raise ValueError("max_token_bytes is too small")
        if not self.algorithms or not self.algorithms <= ALLOWED_ALGORITHMS:
            raise ValueError(
                f"algorithms must be a non-empty subset of {sorted(ALLOWED_ALGORITHMS)}"
            )


@dataclass(frozen=True, kw_only=True)
class VerifiedJwt:
    """A token whose signature, issuer, audience and times were checked."""

    issuer: str
    subject: str
    audiences: tuple[str, ...]
    expires_at: datetime
    key_id: str
    algorithm: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def request_principal(self) -> str:
        """``<iss>/<sub>``, the form policies match in ``requestPrincipals``."""
        return f"{self.issuer}/{self.subject}"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate member {key!r}")
        result[key] = value
    return result


def _b64_json(segment: str, what: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw, object_pairs_hook=_no_duplicates)
    except (binascii.Error, ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise TokenMalformedError(f"token {what} is not base64url JSON") from exc
    if not isinstance(value, dict):
        raise TokenMalformedError(f"token {what} is not a JSON object")
    return value


def _split(token: str, max_bytes: int) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(token, str):
        raise TypeError("token must be a str")
    if len(token) > max_bytes or len(token.encode("utf-8", "surrogatepass")) > max_bytes:
        raise TokenTooLargeError(f"token is larger than {max_bytes} bytes")
    if not token.isascii():
        raise TokenMalformedError("token must be ASCII (JWS compact serialization)")
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise TokenMalformedError("token must have three dot-separated parts (JWS compact)")
    return _b64_json(parts[0], "header"), _b64_json(parts[1], "payload")


def peek_issuer(token: str, max_bytes: int = 8192) -> str | None:
    """The unverified ``iss`` of a token, to choose which rule verifies it.

    Raises:
        TokenTooLargeError, TokenMalformedError: the token cannot be parsed at all.
    """
    _, payload = _split(token, max_bytes)
    issuer = payload.get("iss")
    return issuer if isinstance(issuer, str) else None


def _check_key_alg(alg: str, key: JwkKey) -> None:
    if key.alg is not None and key.alg != alg:
        raise TokenAlgorithmError(f"token alg {alg} does not match key {key.kid!r} alg {key.alg}")
    if alg.startswith(("RS", "PS")):
        if not isinstance(key.key, rsa.RSAPublicKey):
            raise TokenAlgorithmError(f"token alg {alg} needs an RSA key; key {key.kid!r} is not")
        return
    if not isinstance(key.key, ec.EllipticCurvePublicKey):
        raise TokenAlgorithmError(f"token alg {alg} needs an EC key; key {key.kid!r} is not")
    if key.key.curve.name != _EC_ALG_CURVE[alg]:
        raise TokenAlgorithmError(f"token alg {alg} does not match the curve of key {key.kid!r}")


def _number(claims: Mapping[str, Any], name: str, *, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required or name in claims:
            raise TokenClaimError(
                f"claim {name!r} is required" if required else f"claim {name!r} is null"
            )
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenClaimError(f"claim {name!r} must be a number")
    try:
        number = float(value)  # an integer of hundreds of digits does not fit
    except OverflowError as exc:
        raise TokenClaimError(f"claim {name!r} is out of range") from exc
    if not math.isfinite(number):
        raise TokenClaimError(f"claim {name!r} must be a number")
    return number


def _audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    aud = claims.get("aud")
    if aud is None:
        raise TokenClaimError("claim 'aud' is required")
    if isinstance(aud, str):
        return (aud,)
    if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
        return tuple(aud)
    raise TokenClaimError("claim 'aud' must be a string or a non-empty list of strings")


class JwtVerifier:
    """Verifies tokens from one issuer against a key source, at the injected clock's time."""

    def __init__(self, config: JwtVerifierConfig, *, jwks: JwksSource, clock: Clock) -> None:
        self._config = config
        self._jwks = jwks
        self._clock = clock
        self._jws = jwt.PyJWS()

    @property
    def config(self) -> JwtVerifierConfig:
        return self._config

    def verify(self, token: str) -> VerifiedJwt:
        """Verify ``token`` and return its checked claims.

        Raises:
            TokenError: a subclass naming the failed check (see the module docstring).
            JwksUnavailableError: the keys could not be obtained (fail closed).
            TypeError: ``token`` is not a str.
        """
        cfg = self._config
        header, _ = _split(token, cfg.max_token_bytes)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in cfg.algorithms:
            raise TokenAlgorithmError(f"token alg {alg!r} is not allowed")
        typ = header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.upper() not in cfg.token_types):
            raise TokenMalformedError(f"token typ {typ!r} is not accepted")
        if "crit" in header:
            raise TokenMalformedError("token has critical header extensions")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenMalformedError("token header has no kid")
        key = self._jwks.key(kid)
        _check_key_alg(alg, key)
        try:
            decoded = self._jws.decode_complete(token, key=key.key, algorithms=[alg])
        except jwt.InvalidSignatureError as exc:
            raise TokenSignatureError(f"token signature does not verify with key {kid!r}") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise TokenAlgorithmError(f"token alg {alg} is not allowed") from exc
        except jwt.PyJWTError as exc:
            raise TokenMalformedError("token cannot be decoded") from exc
        claims = _b64_json_bytes(decoded["payload"])
        return self._check_claims(claims, kid, alg)

    def _check_claims(self, claims: dict[str, Any], kid: str, alg: str) -> VerifiedJwt:
        cfg = self._config
        issuer = claims.get("iss")
        if not isinstance(issuer, str):
            raise TokenClaimError("claim 'iss' must be a string")
        subject = claims.get("sub", "")
        if not isinstance(subject, str) or (cfg.require_subject and not subject):
            raise TokenClaimError("claim 'sub' must be a non-empty string")
        audiences = _audiences(claims)
        exp = _number(claims, "exp", required=True)
        nbf = _number(claims, "nbf", required=False)
        iat = _number(claims, "iat", required=False)
        assert exp is not None
        if issuer != cfg.issuer:
            raise TokenIssuerError(f"token issuer {issuer!r} is not {cfg.issuer!r}")
        if cfg.audiences.isdisjoint(audiences):
            raise TokenAudienceError(f"token audiences {list(audiences)} are not accepted")
        now = self._clock.now().timestamp()
        leeway = cfg.leeway.total_seconds()
        if now >= exp + leeway:
            raise TokenExpiredError("token has expired")
        if nbf is not None and now + leeway < nbf:
            raise TokenNotYetValidError("token is not valid yet (nbf)")
        if iat is not None and now + leeway < iat:
            raise TokenNotYetValidError("token was issued in the future (iat)")
        return VerifiedJwt(
            issuer=issuer,
            subject=subject,
            audiences=audiences,
            expires_at=_to_datetime(exp),
            key_id=kid,
            algorithm=alg,
            claims=MappingProxyType(claims),
        )


def _to_datetime(timestamp: float) -> datetime:
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, ValueError, OSError):
        return datetime.max.replace(tzinfo=UTC)


def _b64_json_bytes(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise TokenMalformedError("token payload is not JSON") from exc
    if not isinstance(value, dict):
        raise TokenMalformedError("token payload is not a JSON object")
    return value
