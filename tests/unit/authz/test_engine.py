from __future__ import annotations

from typing import Any

import pytest

from citadel.authz.decision import Reason
from citadel.authz.engine import AuthzEngine, EngineOptions
from citadel.authz.errors import DefaultDenyError, DeniedByPolicyError, NoAllowMatchError
from citadel.authz.policy import Action, AuthorizationPolicy
from citadel.authz.policy_loader import parse_policy_text
from citadel.authz.request import RequestContext, namespace_of
from tests.unit.authz.conftest import BACKEND, FRONTEND


def _policies(*specs: tuple[str, str]) -> list[AuthorizationPolicy]:
    out: list[AuthorizationPolicy] = []
    for name, spec in specs:
        text = (
            f"apiVersion: authz.citadel/v1\nkind: AuthorizationPolicy\n"
            f"metadata: {{name: {name}}}\nspec:\n{spec}"
        )
        (policy,) = parse_policy_text(text, f"{name}.yaml")
        assert isinstance(policy, AuthorizationPolicy)
        out.append(policy)
    return out


def _engine(*specs: tuple[str, str], default: Action = Action.DENY) -> AuthzEngine:
    return AuthzEngine(_policies(*specs), EngineOptions(default_action=default))


def _ctx(**kwargs: Any) -> RequestContext:
    return RequestContext.create(**kwargs)


ALLOW_FRONTEND = (
    "allow-frontend",
    f'  rules:\n  - from: [{{source: {{principals: ["{FRONTEND}"]}}}}]\n',
)


def test_exact_principal_is_allowed_and_decision_names_policy_and_rule() -> None:
    decision = _engine(ALLOW_FRONTEND).decide(_ctx(principal=FRONTEND))
    assert decision.allowed
    assert decision.reason == Reason.ALLOWED_BY_POLICY
    assert (decision.policy, decision.rule, decision.origin) == (
        "allow-frontend",
        0,
        "allow-frontend.yaml",
    )
    assert "policy 'allow-frontend' rule 0" in decision.explain()


@pytest.mark.parametrize(
    "principal",
    [
        "spiffe://example.org/ns/prod/sa/Frontend",
        "spiffe://example.org/ns/prod/sa/frontend/",
        "spiffe://example.org/ns/prod/sa/frontend2",
        "spiffe://example.org/NS/prod/sa/frontend",
        " spiffe://example.org/ns/prod/sa/frontend",
    ],
    ids=["different-case", "trailing-slash", "longer", "uppercase-segment", "leading-space"],
)
def test_principal_is_compared_exactly_without_normalising(principal: str) -> None:
    decision = _engine(ALLOW_FRONTEND).decide(_ctx(principal=principal))
    assert not decision.allowed
    assert decision.reason == Reason.NO_ALLOW_MATCH


@pytest.mark.parametrize(
    ("pattern", "principal", "allowed"),
    [
        ("spiffe://example.org/ns/prod/*", FRONTEND, True),
        ("spiffe://example.org/ns/prod/*", "spiffe://example.org/ns/production/sa/x", False),
        ("spiffe://example.org/*", "spiffe://example.org.evil/ns/prod/sa/x", False),
        ("*/sa/frontend", FRONTEND, True),
        ("*/sa/frontend", "spiffe://example.org/ns/prod/sa/xfrontend", False),
        ("*", FRONTEND, True),
        ("*", None, False),
    ],
    ids=[
        "prefix-match",
        "prefix-needs-whole-segment",
        "prefix-does-not-extend-trust-domain",
        "suffix-match",
        "suffix-needs-whole-segment",
        "star-matches-any-peer",
        "star-does-not-match-anonymous",
    ],
)
def test_principal_wildcards(pattern: str, principal: str | None, allowed: bool) -> None:
    engine = _engine(("p", f'  rules:\n  - from: [{{source: {{principals: ["{pattern}"]}}}}]\n'))
    assert engine.decide(_ctx(principal=principal)).allowed is allowed


def test_not_principals_matches_anonymous_and_other_peers() -> None:
    engine = _engine(
        ("p", f'  rules:\n  - from: [{{source: {{notPrincipals: ["{FRONTEND}"]}}}}]\n')
    )
    assert engine.decide(_ctx(principal=None)).allowed
    assert engine.decide(_ctx(principal=BACKEND)).allowed
    assert not engine.decide(_ctx(principal=FRONTEND)).allowed


def test_namespace_comes_from_the_spiffe_id_path() -> None:
    engine = _engine(("p", '  rules:\n  - from: [{source: {namespaces: ["prod"]}}]\n'))
    assert engine.decide(_ctx(principal=FRONTEND)).allowed
    assert not engine.decide(_ctx(principal="spiffe://example.org/prod/sa/frontend")).allowed
    assert namespace_of("spiffe://example.org/ns/prod/sa/x/extra") is None


def test_request_principal_is_issuer_slash_subject() -> None:
    engine = _engine(
        (
            "p",
            '  rules:\n  - from: [{source: {requestPrincipals: ["https://issuer.example/alice"]}}]\n',
        )
    )
    assert engine.decide(_ctx(request_principal="https://issuer.example/alice")).allowed
    assert not engine.decide(_ctx(request_principal="https://issuer.example/bob")).allowed
    assert not engine.decide(_ctx()).allowed


@pytest.mark.parametrize(
    ("operation", "fields", "allowed"),
    [
        ('grpcMethods: ["/pkg.Svc/Get"]', {"grpc_method": "/pkg.Svc/Get"}, True),
        ('grpcMethods: ["/pkg.Svc/Get"]', {"grpc_method": "/pkg.Svc/Put"}, False),
        ('grpcMethods: ["/pkg.Svc/*"]', {"grpc_method": "/pkg.Svc/Put"}, True),
        ('grpcMethods: ["/pkg.Svc/*"]', {"grpc_method": "/pkg.SvcX/Put"}, False),
        ('grpcMethods: ["/pkg.Svc/Get"]', {"method": "POST", "path": "/pkg.Svc/Get"}, False),
        ('methods: ["GET"]', {"method": "GET"}, True),
        ('methods: ["GET"]', {"method": "get"}, False),
        ('paths: ["/api/*"]', {"path": "/api/v1/x"}, True),
        ('paths: ["*.json"]', {"path": "/a/b.json"}, True),
        ('paths: ["/api"]', {"path": "/api/"}, False),
        ('hosts: ["*.example.org"]', {"host": "API.Example.org"}, True),
        ('hosts: ["api.example.org"]', {"host": "api.example.org:8443"}, True),
        ("ports: [8080]", {"port": 8080}, True),
        ("ports: [8080]", {"port": 8081}, False),
        ('notPaths: ["/admin/*"]', {"path": "/admin/x"}, False),
        ('methods: ["POST"]', {"grpc_method": "/pkg.Svc/Get"}, True),
    ],
    ids=[
        "grpc-exact",
        "grpc-other-method",
        "grpc-service-wildcard",
        "grpc-service-wildcard-needs-exact-service",
        "grpc-rule-ignores-plain-http",
        "http-method",
        "http-method-case-sensitive",
        "path-prefix",
        "path-suffix",
        "path-exact",
        "host-wildcard-case-insensitive",
        "host-with-port",
        "port",
        "other-port",
        "not-paths",
        "grpc-call-is-post",
    ],
)
def test_operations(operation: str, fields: dict[str, Any], allowed: bool) -> None:
    engine = _engine(("p", f"  rules:\n  - to: [{{operation: {{{operation}}}}}]\n"))
    assert engine.decide(_ctx(**fields)).allowed is allowed


@pytest.mark.parametrize(
    ("condition", "claims", "allowed"),
    [
        (
            '{key: "request.auth.claims[groups]", values: ["admins"]}',
            {"groups": ["dev", "admins"]},
            True,
        ),
        ('{key: "request.auth.claims[groups]", values: ["admins"]}', {"groups": "admins"}, True),
        ('{key: "request.auth.claims[groups]", values: ["admins"]}', {"groups": ["dev"]}, False),
        ('{key: "request.auth.claims[groups]", values: ["admins"]}', {}, False),
        (
            '{key: "request.auth.claims[org][team]", values: ["sre*"]}',
            {"org": {"team": "sre-eu"}},
            True,
        ),
        ('{key: "request.auth.claims[admin]", values: ["true"]}', {"admin": True}, True),
        ('{key: "request.auth.claims[level]", values: ["3"]}', {"level": 3}, True),
        (
            '{key: "request.auth.claims[groups]", notValues: ["banned"]}',
            {"groups": ["banned"]},
            False,
        ),
        ('{key: "request.auth.claims[groups]", notValues: ["banned"]}', {}, True),
        (
            '{key: "request.auth.claims[groups]", values: ["admins"]}',
            {"groups": {"admins": 1}},
            False,
        ),
    ],
    ids=[
        "list-claim",
        "string-claim",
        "missing-value",
        "missing-claim",
        "nested-claim-prefix",
        "boolean-claim",
        "integer-claim",
        "not-values-hit",
        "not-values-absent-claim",
        "object-claim-never-matches",
    ],
)
def test_claim_conditions(condition: str, claims: dict[str, Any], allowed: bool) -> None:
    engine = _engine(("p", f"  rules:\n  - when: [{condition}]\n"))
    assert engine.decide(_ctx(claims=claims)).allowed is allowed


@pytest.mark.parametrize(
    ("source_ip", "allowed"),
    [("10.1.2.3", True), ("192.168.0.1", False), ("::1", False), (None, False)],
    ids=["inside", "outside", "other-family", "unknown"],
)
def test_source_ip_condition(source_ip: str | None, allowed: bool) -> None:
    engine = _engine(("p", '  rules:\n  - when: [{key: source.ip, values: ["10.0.0.0/8"]}]\n'))
    assert engine.decide(_ctx(source_ip=source_ip)).allowed is allowed


def test_deny_is_evaluated_before_allow() -> None:
    engine = _engine(
        ALLOW_FRONTEND,
        (
            "deny-frontend-put",
            "  action: DENY\n  rules:\n"
            f'  - from: [{{source: {{principals: ["{FRONTEND}"]}}}}]\n'
            '    to: [{operation: {grpcMethods: ["/pkg.Svc/Put"]}}]\n',
        ),
    )
    denied = engine.decide(_ctx(principal=FRONTEND, grpc_method="/pkg.Svc/Put"))
    assert (denied.allowed, denied.reason, denied.policy) == (
        False,
        Reason.DENIED_BY_POLICY,
        "deny-frontend-put",
    )
    assert isinstance(denied.to_error(), DeniedByPolicyError)
    assert engine.decide(_ctx(principal=FRONTEND, grpc_method="/pkg.Svc/Get")).allowed


def test_without_any_policy_the_default_decides() -> None:
    denied = _engine().decide(_ctx(principal=FRONTEND))
    assert (denied.allowed, denied.reason) == (False, Reason.DEFAULT_DENY)
    assert isinstance(denied.to_error(), DefaultDenyError)
    allowed = _engine(default=Action.ALLOW).decide(_ctx(principal=FRONTEND))
    assert (allowed.allowed, allowed.reason) == (True, Reason.DEFAULT_ALLOW)


def test_deny_only_policies_fall_back_to_the_default() -> None:
    deny = (
        "deny-backend",
        f'  action: DENY\n  rules:\n  - from: [{{source: {{principals: ["{BACKEND}"]}}}}]\n',
    )
    assert _engine(deny, default=Action.ALLOW).decide(_ctx(principal=FRONTEND)).allowed
    assert not _engine(deny, default=Action.DENY).decide(_ctx(principal=FRONTEND)).allowed


def test_allow_policy_makes_everything_else_denied_even_with_default_allow() -> None:
    decision = _engine(ALLOW_FRONTEND, default=Action.ALLOW).decide(_ctx(principal=BACKEND))
    assert (decision.allowed, decision.reason) == (False, Reason.NO_ALLOW_MATCH)
    assert isinstance(decision.to_error(), NoAllowMatchError)


def test_allow_policy_without_rules_denies_and_empty_rule_allows() -> None:
    assert not _engine(("none", "  rules: []\n"), default=Action.ALLOW).decide(_ctx()).allowed
    assert _engine(("all", "  rules: [{}]\n")).decide(_ctx()).allowed


def test_audit_policy_is_recorded_but_does_not_decide() -> None:
    engine = _engine(ALLOW_FRONTEND, ("audit-all", "  action: AUDIT\n  rules: [{}]\n"))
    allowed = engine.decide(_ctx(principal=FRONTEND))
    denied = engine.decide(_ctx(principal=BACKEND))
    assert allowed.allowed and allowed.audit == ("audit-all",)
    assert not denied.allowed and denied.audit == ("audit-all",)


def test_targeted_policy_applies_only_to_its_destination() -> None:
    engine = _engine(
        (
            "backend-only",
            f'  targets: ["{BACKEND}"]\n  rules:\n'
            f'  - from: [{{source: {{principals: ["{FRONTEND}"]}}}}]\n',
        ),
        default=Action.ALLOW,
    )
    assert not engine.decide(_ctx(principal=BACKEND, destination=BACKEND)).allowed
    assert engine.decide(_ctx(principal=BACKEND, destination=FRONTEND)).allowed
    assert engine.decide(_ctx(principal=BACKEND)).allowed


def test_wildcard_target_applies_to_matching_destinations() -> None:
    engine = _engine(
        ("ns", '  targets: ["spiffe://example.org/ns/prod/*"]\n  rules: []\n'), default=Action.ALLOW
    )
    assert not engine.decide(_ctx(destination=BACKEND)).allowed
    assert engine.decide(_ctx(destination="spiffe://example.org/ns/dev/sa/x")).allowed


def test_first_matching_rule_in_policy_order_is_reported_across_indexed_rules() -> None:
    engine = _engine(
        ("generic", f'  rules:\n  - from: [{{source: {{principals: ["{FRONTEND}"]}}}}]\n'),
        ("indexed", '  rules:\n  - to: [{operation: {grpcMethods: ["/pkg.Svc/Get"]}}]\n'),
    )
    decision = engine.decide(_ctx(principal=FRONTEND, grpc_method="/pkg.Svc/Get"))
    assert decision.policy == "generic"
    decision = engine.decide(_ctx(principal=BACKEND, grpc_method="/pkg.Svc/Get"))
    assert decision.policy == "indexed"


def test_candidate_cache_is_bounded() -> None:
    engine = _engine(ALLOW_FRONTEND)
    for i in range(5000):
        engine.decide(_ctx(principal=FRONTEND, grpc_method=f"/pkg.Svc/M{i}"))
    assert len(engine._candidates) <= 4096


def test_default_action_must_be_allow_or_deny() -> None:
    with pytest.raises(ValueError, match="ALLOW or DENY"):
        EngineOptions(default_action=Action.AUDIT)


def test_allowed_decision_has_no_error() -> None:
    decision = _engine(("all", "  rules: [{}]\n")).decide(_ctx())
    with pytest.raises(ValueError):
        decision.to_error()
