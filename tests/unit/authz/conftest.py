"""Fixtures of the authz tests: a PKI, JWT signers and policy directories."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.unit.authz.pki import Authority, Issued
from tests.unit.authz.tokens import AUDIENCE, ISSUER, Signer, jwks_of

TD = "example.org"
FRONTEND = "spiffe://example.org/ns/prod/sa/frontend"
BACKEND = "spiffe://example.org/ns/prod/sa/backend"
FOREIGN_FRONTEND = "spiffe://foreign.org/ns/prod/sa/frontend"

WritePolicy = Callable[[str, str], Path]


@dataclass(frozen=True)
class Pki:
    ca: Authority
    foreign_ca: Authority
    server: Issued
    frontend: Issued
    backend: Issued
    foreign: Issued


@pytest.fixture(scope="session")
def pki() -> Pki:
    ca = Authority(TD)
    foreign_ca = Authority("foreign.org")
    return Pki(
        ca=ca,
        foreign_ca=foreign_ca,
        server=ca.issue(
            ["spiffe://example.org/ns/sys/sa/server"], dns=["localhost"], ips=["127.0.0.1"]
        ),
        frontend=ca.issue([FRONTEND]),
        backend=ca.issue([BACKEND]),
        foreign=foreign_ca.issue([FOREIGN_FRONTEND]),
    )


@pytest.fixture
def signer() -> Signer:
    return Signer("RS256", kid="rsa-1")


@pytest.fixture
def ec_signer() -> Signer:
    return Signer("ES256", kid="ec-1")


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "policies"
    directory.mkdir()
    return directory


@pytest.fixture
def write_policy(policy_dir: Path) -> WritePolicy:
    def write(name: str, text: str) -> Path:
        path = policy_dir / name
        path.write_text(text)
        return path

    return write


def allow_policy(
    name: str,
    *,
    principals: list[str] | None = None,
    grpc_methods: list[str] | None = None,
    request_principals: list[str] | None = None,
    action: str = "ALLOW",
    targets: list[str] | None = None,
) -> str:
    """One AuthorizationPolicy document with a single rule."""
    rule: dict[str, Any] = {}
    source: dict[str, Any] = {}
    if principals:
        source["principals"] = principals
    if request_principals:
        source["requestPrincipals"] = request_principals
    if source:
        rule["from"] = [{"source": source}]
    if grpc_methods:
        rule["to"] = [{"operation": {"grpcMethods": grpc_methods}}]
    spec: dict[str, Any] = {"action": action, "rules": [rule]}
    if targets:
        spec["targets"] = targets
    document = {
        "apiVersion": "authz.citadel/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name},
        "spec": spec,
    }
    return json.dumps(document)  # JSON is YAML


def request_authentication(
    name: str = "jwt",
    *,
    jwks: dict[str, Any] | None = None,
    jwks_file: str | None = None,
    jwks_uri: str | None = None,
    required: bool = False,
    issuer: str = ISSUER,
    audiences: list[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> str:
    rule: dict[str, Any] = {
        "issuer": issuer,
        "audiences": [AUDIENCE] if audiences is None else audiences,
    }
    if jwks is not None:
        rule["jwks"] = jwks
    if jwks_file is not None:
        rule["jwksFile"] = jwks_file
    if jwks_uri is not None:
        rule["jwksUri"] = jwks_uri
    rule.update(extra or {})
    document = {
        "apiVersion": "authz.citadel/v1",
        "kind": "RequestAuthentication",
        "metadata": {"name": name},
        "spec": {"required": required, "jwtRules": [rule]},
    }
    return json.dumps(document)


@pytest.fixture
def jwks_for(signer: Signer, ec_signer: Signer) -> dict[str, Any]:
    return jwks_of(signer, ec_signer)
