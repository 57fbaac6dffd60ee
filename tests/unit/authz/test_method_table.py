from __future__ import annotations

from pathlib import Path

import pytest

from citadel.authz.enforcer import AccessRequest
from citadel.authz.errors import PolicyError
from citadel.authz.method_table import (
    DEFAULT_CA_METHOD_RULES,
    MethodRule,
    MethodTable,
    load_method_table,
)
from citadel.identity.spiffe_id import TrustDomain
from tests.unit.authz.conftest import FRONTEND, Pki

ADMIN = "spiffe://example.org/citadel/admin/alice"
AGENT = "spiffe://example.org/citadel/agent/node-1"
LIST = "/citadel.admin.v1.Admin/ListEntries"
DELETE = "/citadel.admin.v1.Admin/DeleteEntry"
FETCH = "/citadel.agent.v1.Agent/FetchBundle"


@pytest.fixture
def table() -> MethodTable:
    return MethodTable(
        {
            **DEFAULT_CA_METHOD_RULES,
            "/citadel.admin.v1.Admin/*": MethodRule(allow_admin=True, allow_local=True),
            DELETE: MethodRule(allow_local=True),
            FETCH: MethodRule(allow_agent=True, allow_admin=True),
        },
        admin_principals=["spiffe://example.org/citadel/admin/*"],
        agent_principals=["spiffe://example.org/citadel/agent/*"],
    )


@pytest.mark.parametrize(
    ("method", "principal", "local", "allowed"),
    [
        (LIST, ADMIN, False, True),
        (LIST, AGENT, False, False),
        (LIST, None, True, True),
        (LIST, None, False, False),
        (DELETE, ADMIN, False, False),
        (DELETE, None, True, True),
        (FETCH, AGENT, False, True),
        (FETCH, FRONTEND, False, False),
        ("/istio.v1.auth.IstioCertificateService/CreateCertificate", None, False, True),
        ("/grpc.health.v1.Health/Check", None, False, True),
        ("/citadel.secret.v1.Secret/Dump", ADMIN, True, False),
    ],
    ids=[
        "admin-on-admin-service",
        "agent-on-admin-service",
        "local-on-admin-service",
        "anonymous-remote-on-admin-service",
        "exact-entry-overrides-service-wildcard",
        "local-only-method",
        "agent-method",
        "workload-on-agent-method",
        "csr-api-open-to-all",
        "health-open-to-all",
        "unlisted-method-denied",
    ],
)
def test_method_table_decisions(
    table: MethodTable, method: str, principal: str | None, local: bool, allowed: bool
) -> None:
    assert table.decide(method, principal=principal, local=local).allowed is allowed


def test_default_table_denies_everything_not_listed() -> None:
    decision = MethodTable().decide(
        "/citadel.admin.v1.Admin/ListEntries", principal=ADMIN, local=True
    )
    assert (decision.allowed, decision.reason) == (False, "default_deny")


def test_admin_role_requires_configured_admins() -> None:
    table = MethodTable({LIST: MethodRule(allow_admin=True)})
    assert not table.decide(LIST, principal=ADMIN, local=False).allowed


def test_check_uses_the_verified_certificate(table: MethodTable, pki: Pki) -> None:
    result = table.check(AccessRequest(grpc_method=FETCH, peer_certificate=pki.frontend.cert_pem))
    assert result.principal == FRONTEND
    assert result.error is not None and result.error.kind == "no_allow_match"


def test_check_rejects_foreign_trust_domain() -> None:
    table = MethodTable(
        {FETCH: MethodRule(allow_authenticated=True)},
        trust_domains=frozenset({TrustDomain("example.org")}),
    )
    ok = table.check(AccessRequest(grpc_method=FETCH, peer_principal=AGENT))
    foreign = table.check(
        AccessRequest(grpc_method=FETCH, peer_principal="spiffe://foreign.org/agent")
    )
    assert ok.allowed
    assert foreign.error is not None and foreign.error.kind == "foreign_trust_domain"


@pytest.mark.parametrize(
    "rules",
    [{"*": MethodRule(allow_any=True)}, {"Admin/List": MethodRule()}],
    ids=["star", "not-a-method"],
)
def test_bad_method_keys_are_refused(rules: dict[str, MethodRule]) -> None:
    with pytest.raises(ValueError):
        MethodTable(rules)


def test_method_table_loads_from_yaml(tmp_path: Path) -> None:
    path = tmp_path / "methods.yaml"
    path.write_text(
        "adminPrincipals: ['spiffe://example.org/citadel/admin/*']\n"
        "methods:\n"
        "  /citadel.admin.v1.Admin/*: {allowAdmin: true, allowLocal: true}\n"
    )
    table = load_method_table(path)
    assert table.decide(LIST, principal=ADMIN, local=False).allowed
    assert not table.decide(FETCH, principal=ADMIN, local=False).allowed


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("methods:\n  /a.B/C: {allowEveryone: true}\n", "methods./a.B/C.allowEveryone"),
        ("methods:\n  /a.B/C: {allowAdmin: 'yes'}\n", "methods./a.B/C.allowAdmin"),
        ("methods:\n  '*': {allowAny: true}\n", "methods.*"),
        ("adminPrincipals: ['spiffe://example.org/a/']\nmethods: {}\n", "adminPrincipals[0]"),
    ],
    ids=["unknown-flag", "string-flag", "star-method", "bad-admin-principal"],
)
def test_invalid_method_table_yaml_names_the_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "methods.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_method_table(path)
    assert info.value.field == field
