"""Policy loading (``citadel.authz.policy_loader``): only PolicyError may escape.

The input is decoded twice, as UTF-8 (invalid bytes replaced) and as Latin-1, and each text
is parsed as a policy file; every accepted document must carry a name and its origin.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from pathlib import Path

from citadel.authz.errors import PolicyError
from citadel.authz.policy_loader import parse_policy_text

__all__ = ["one_input", "seeds"]

_BASE_DIR = Path(tempfile.gettempdir())


def one_input(data: bytes) -> None:
    for text in {data.decode("utf-8", errors="replace"), data.decode("latin-1")}:
        try:
            documents = parse_policy_text(text, "fuzz.yaml", _BASE_DIR)
        except PolicyError:
            continue
        for document in documents:
            assert document.name and document.origin == "fuzz.yaml", document


_HEADER = "apiVersion: authz.citadel/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n"


def seeds() -> Iterable[bytes]:
    yield (
        _HEADER
        + """spec:
  action: DENY
  targets: ["spiffe://example.org/ns/prod/sa/backend"]
  rules:
  - from:
    - source:
        principals: ["spiffe://example.org/ns/prod/*"]
        notPrincipals: ["*/sa/bad"]
        requestPrincipals: ["https://issuer.example/*"]
        ipBlocks: ["10.0.0.0/8"]
    to:
    - operation: {grpcMethods: ["/pkg.Svc/Get"], methods: [GET], paths: ["/api/*"], ports: [8080]}
    when:
    - {key: "request.auth.claims[groups]", values: [admins]}
    - {key: source.ip, notValues: ["10.1.0.0/16"]}
"""
    ).encode()
    yield (_HEADER + "spec:\n  action: AUDIT\n  rules: [{}]\n---\n" + _HEADER).encode()
    yield json.dumps(
        {
            "apiVersion": "authz.citadel/v1",
            "kind": "RequestAuthentication",
            "metadata": {"name": "jwt"},
            "spec": {
                "required": True,
                "jwtRules": [
                    {
                        "issuer": "https://issuer.example",
                        "audiences": ["citadel"],
                        "jwksUri": "https://issuer.example/jwks.json",
                        "fromHeaders": [{"name": "authorization", "prefix": "Bearer "}],
                        "outputClaimToHeaders": [{"header": "x-jwt-sub", "claim": "sub"}],
                        "leeway": "30s",
                    }
                ],
            },
        }
    ).encode()
