"""JWT test material: signing keys, JWKS documents and (hostile) tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "Signer",
    "b64url",
    "hs256_with_secret",
    "jwks_of",
    "standard_claims",
    "unsigned_token",
]

ISSUER = "https://issuer.example"
AUDIENCE = "citadel"

_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
_EC_KEYS = {
    "ES256": ec.generate_private_key(ec.SECP256R1()),
    "ES384": ec.generate_private_key(ec.SECP384R1()),
}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Signer:
    """A private key with a kid; ``alg`` is RS*/PS* (RSA) or ES256/ES384 (EC)."""

    def __init__(self, alg: str = "RS256", kid: str = "key-1") -> None:
        self.alg = alg
        self.kid = kid
        self.key: Any = _RSA_KEY if alg[:2] in ("RS", "PS") else _EC_KEYS[alg]

    def public_jwk(self, *, use: str | None = None, with_alg: bool = True) -> dict[str, Any]:
        algorithm = RSAAlgorithm if self.alg[:2] in ("RS", "PS") else ECAlgorithm
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.key.public_key()))
        jwk["kid"] = self.kid
        if with_alg:
            jwk["alg"] = self.alg
        if use is not None:
            jwk["use"] = use
        return jwk

    def public_pem(self) -> bytes:
        pem: bytes = self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return pem

    def token(
        self,
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        alg: str | None = None,
    ) -> str:
        """Sign any JSON claims (also ill-typed ones a JWT library would refuse to encode)."""
        merged = {"kid": self.kid, **(headers or {})}
        payload = json.dumps(claims).encode()
        return jwt.PyJWS().encode(payload, self.key, algorithm=alg or self.alg, headers=merged)


def jwks_of(*signers: Signer, use: str | None = None) -> dict[str, Any]:
    return {"keys": [s.public_jwk(use=use) for s in signers]}


def standard_claims(now: datetime, **overrides: Any) -> dict[str, Any]:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "alice",
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + timedelta(hours=1)).timestamp()),
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _encode(header: dict[str, Any], claims: dict[str, Any]) -> str:
    head = b64url(json.dumps(header).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}"


def unsigned_token(claims: dict[str, Any], kid: str = "key-1") -> str:
    """``alg: none`` with an empty signature."""
    return _encode({"alg": "none", "typ": "JWT", "kid": kid}, claims) + "."


def hs256_with_secret(claims: dict[str, Any], secret: bytes, kid: str = "key-1") -> str:
    """HS256 keyed with ``secret`` (the classic attack keys it with the public key PEM)."""
    signing_input = _encode({"alg": "HS256", "typ": "JWT", "kid": kid}, claims)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"
