from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from citadel.authz.lint import Finding, lint_policy_dir, rule_covers
from citadel.authz.policy import Operation, Rule, Source
from tests.unit.authz.conftest import BACKEND, FRONTEND, WritePolicy, allow_policy


def _policy(name: str, rules: list[dict[str, Any]], action: str = "ALLOW", **spec: Any) -> str:
    return json.dumps(
        {
            "apiVersion": "authz.citadel/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name},
            "spec": {"action": action, "rules": rules, **spec},
        }
    )


def _errors(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.severity == "error"]


def _warnings(findings: list[Finding]) -> list[str]:
    return [f.message for f in findings if f.severity == "warning"]


def _from(*principals: str) -> dict[str, Any]:
    return {"from": [{"source": {"principals": list(principals)}}]}


def test_clean_directory_has_no_findings(write_policy: WritePolicy, policy_dir: Path) -> None:
    write_policy("a.yaml", _policy("a", [_from(FRONTEND), _from(BACKEND)]))
    assert lint_policy_dir(policy_dir) == []


def test_rule_shadowed_within_a_policy_is_an_error(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy("a.yaml", _policy("a", [_from("spiffe://example.org/ns/prod/*"), _from(FRONTEND)]))
    (message,) = _errors(lint_policy_dir(policy_dir))
    assert message == "policy 'a' rule 1 is shadowed by rule 0 of the same policy"


def test_allow_rule_shadowed_by_deny_is_an_error(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy(
        "a.yaml",
        _policy("allow-fe", [{**_from(FRONTEND), "to": [{"operation": {"methods": ["GET"]}}]}]),
    )
    write_policy("b.yaml", _policy("deny-prod", [_from("*/sa/frontend")], action="DENY"))
    (message,) = _errors(lint_policy_dir(policy_dir))
    assert "policy 'allow-fe' rule 0 never allows anything" in message
    assert "DENY policy 'deny-prod' rule 0" in message


def test_targeted_deny_does_not_shadow_an_untargeted_allow(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy("a.yaml", _policy("allow-fe", [_from(FRONTEND)]))
    write_policy("b.yaml", _policy("deny", [_from(FRONTEND)], action="DENY", targets=[BACKEND]))
    assert _errors(lint_policy_dir(policy_dir)) == []


def test_deny_with_extra_condition_does_not_shadow(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy("a.yaml", _policy("allow-fe", [_from(FRONTEND)]))
    write_policy(
        "b.yaml",
        _policy(
            "deny",
            [{**_from(FRONTEND), "when": [{"key": "source.ip", "values": ["10.0.0.0/8"]}]}],
            action="DENY",
        ),
    )
    assert _errors(lint_policy_dir(policy_dir)) == []


def test_invalid_files_are_reported_and_others_still_linted(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy("a.yaml", "kind: [")
    write_policy("b.yaml", _policy("b", [_from(FRONTEND), _from(FRONTEND)]))
    errors = _errors(lint_policy_dir(policy_dir))
    assert any("not valid YAML" in e for e in errors)
    assert "policy 'b' rule 1 is shadowed by rule 0 of the same policy" in errors


def test_duplicate_names_are_errors(write_policy: WritePolicy, policy_dir: Path) -> None:
    write_policy("a.yaml", allow_policy("same", principals=[FRONTEND]))
    write_policy("b.yaml", allow_policy("same", principals=[BACKEND]))
    (message,) = _errors(lint_policy_dir(policy_dir))
    assert "'same' is already defined" in message


def test_warnings_for_empty_allow_redundant_allow_and_jwt_rules_without_authn(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy("a.yaml", _policy("empty", []))
    write_policy("b.yaml", _policy("broad", [_from("spiffe://example.org/*")]))
    write_policy("c.yaml", _policy("narrow", [_from(FRONTEND)]))
    write_policy(
        "d.yaml",
        _policy("jwt", [{"from": [{"source": {"requestPrincipals": ["https://i/alice"]}}]}]),
    )
    findings = lint_policy_dir(policy_dir)
    warnings = _warnings(findings)
    assert _errors(findings) == []
    assert any("'empty' has no rules" in w for w in warnings)
    assert any("'narrow' rule 0 is redundant" in w for w in warnings)
    assert any("'jwt' rule 0 matches on JWTs" in w for w in warnings)


@pytest.mark.parametrize(
    ("a", "b", "covers"),
    [
        (Rule(), Rule(sources=(Source(principals=(FRONTEND,)),)), True),
        (Rule(sources=(Source(principals=(FRONTEND,)),)), Rule(), False),
        (
            Rule(sources=(Source(ip_blocks=("10.0.0.0/8",)),)),
            Rule(sources=(Source(ip_blocks=("10.1.0.0/16",)),)),
            True,
        ),
        (
            Rule(sources=(Source(ip_blocks=("10.1.0.0/16",)),)),
            Rule(sources=(Source(ip_blocks=("10.0.0.0/8",)),)),
            False,
        ),
        (
            Rule(sources=(Source(not_principals=(FRONTEND,)),)),
            Rule(sources=(Source(not_principals=("*/sa/frontend",)),)),
            True,
        ),
        (
            Rule(sources=(Source(not_principals=("*/sa/frontend",)),)),
            Rule(sources=(Source(not_principals=(FRONTEND,)),)),
            False,
        ),
        (
            Rule(operations=(Operation(hosts=("*.EXAMPLE.org",)),)),
            Rule(operations=(Operation(hosts=("api.example.org",)),)),
            True,
        ),
        (
            Rule(operations=(Operation(paths=("/api/*",)),)),
            Rule(operations=(Operation(paths=("*.json",)),)),
            False,
        ),
    ],
    ids=[
        "empty-covers-all",
        "constrained-does-not-cover-empty",
        "wider-cidr",
        "narrower-cidr",
        "not-field-excluded-more-by-b",
        "not-field-excluded-less-by-b",
        "host-case-insensitive",
        "prefix-does-not-cover-suffix",
    ],
)
def test_rule_covers(a: Rule, b: Rule, covers: bool) -> None:
    assert rule_covers(a, b) is covers
