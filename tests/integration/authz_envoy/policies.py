"""Policy documents and JWT material for the authz Envoy tests.

Policies are built as dicts and written as YAML; JWTs are ES256, signed in the test with a
key whose public half is the JWKS file a RequestAuthentication policy names.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import yaml

from tests.unit.authz.tokens import Signer

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "allow_principals",
    "jwt_required",
    "mint",
    "write_jwks",
]

ISSUER = "https://issuer.example"
AUDIENCE = "server.example.org"
_API = "authz.citadel/v1"


def _document(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": _API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def allow_principals(*principals: str, name: str = "allow-callers") -> str:
    """One ALLOW policy: these peer SPIFFE IDs, any request (others hit the default deny)."""
    rule = {"from": [{"source": {"principals": list(principals)}}]}
    return yaml.safe_dump(_document("AuthorizationPolicy", name, {"rules": [rule]}))


def jwt_required(*, jwks_file: Path, principal: str, request_principal: str) -> str:
    """A required ES256 JWT (JWKS from a file, ``sub`` copied to ``x-jwt-sub``), and an ALLOW
    for ``principal`` carrying a token of ``request_principal`` (``iss/sub``)."""
    authentication = _document(
        "RequestAuthentication",
        "issuer-example",
        {
            "required": True,
            "jwtRules": [
                {
                    "issuer": ISSUER,
                    "audiences": [AUDIENCE],
                    "jwksFile": str(jwks_file),
                    "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}],
                }
            ],
        },
    )
    authorization = _document(
        "AuthorizationPolicy",
        "client-with-token",
        {
            "rules": [
                {
                    "from": [
                        {
                            "source": {
                                "principals": [principal],
                                "requestPrincipals": [request_principal],
                            }
                        }
                    ]
                }
            ]
        },
    )
    return yaml.safe_dump_all([authentication, authorization])


def write_jwks(path: Path, *signers: Signer) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"keys": [s.public_jwk() for s in signers]}))
    return path


def mint(signer: Signer, *, subject: str = "alice", audience: str = AUDIENCE, **claims: Any) -> str:
    """A token valid now (the ext_authz process checks it against the wall clock)."""
    now = int(time.time())
    body: dict[str, Any] = {
        "iss": ISSUER,
        "sub": subject,
        "aud": audience,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    body.update(claims)
    return signer.token(body)
