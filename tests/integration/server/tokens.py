"""Tokens for the server tests: an OIDC issuer with a JWKS file, hostile token shapes, and
JWT-shaped Kubernetes service-account tokens (their validity is the fake API server's call)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

__all__ = [
    "K8S_ISSUER",
    "OIDC_AUDIENCE",
    "OIDC_ISSUER",
    "OidcTestIssuer",
    "kube_token",
    "unsigned_token",
]

K8S_ISSUER = "https://kubernetes.default.svc.cluster.local"
OIDC_ISSUER = "https://oidc.test.example"
OIDC_AUDIENCE = "citadel"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value, separators=(",", ":")).encode())


def unsigned_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return f"{_segment(header)}.{_segment(claims)}.{_b64(signature)}"


def kube_token(namespace: str, account: str, *, now: datetime, lifetime: timedelta) -> str:
    """A JWT-shaped projected service-account token (signature not checked by anyone here:
    the fake API server decides by the exact string)."""
    claims = {
        "iss": K8S_ISSUER,
        "sub": f"system:serviceaccount:{namespace}:{account}",
        "aud": ["istio-ca"],
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": account}},
        "jti": secrets.token_hex(8),
    }
    return unsigned_token({"alg": "RS256", "kid": "k8s"}, claims, secrets.token_bytes(32))


@dataclass
class OidcTestIssuer:
    """An OIDC issuer with one ES256 key, published as a JWKS file."""

    directory: Path
    issuer: str = OIDC_ISSUER
    kid: str = "oidc-key-1"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    def __post_init__(self) -> None:
        jwk = json.loads(ECAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        self.jwks_file = self.directory / "jwks.json"
        self.jwks_file.write_text(json.dumps({"keys": [jwk]}))

    @property
    def public_pem(self) -> bytes:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def claims(self, subject: str, *, now: datetime, **overrides: Any) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": subject,
            "aud": OIDC_AUDIENCE,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()) - 5,
            "exp": int((now + timedelta(minutes=10)).timestamp()),
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(
        self,
        subject: str,
        *,
        now: datetime,
        kid: str | None = None,
        claims: dict[str, object] | None = None,
        **overrides: object,
    ) -> str:
        return jwt.encode(
            self.claims(subject, now=now, **{**(claims or {}), **overrides}),
            self.key,
            algorithm="ES256",
            headers={"kid": kid or self.kid},
        )

    def alg_none_token(self, subject: str, *, now: datetime) -> str:
        return unsigned_token({"alg": "none", "kid": self.kid}, self.claims(subject, now=now))

    def hs256_with_public_key_token(self, subject: str, *, now: datetime) -> str:
        """The classic confusion attack: HMAC keyed with the issuer's public key."""
        signing_input = (
            f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': self.kid})}."
            f"{_segment(self.claims(subject, now=now))}"
        )
        mac = hmac.new(self.public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{_b64(mac)}"
