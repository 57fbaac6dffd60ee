from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from citadel.authz.errors import PolicyError
from citadel.authz.policy import Action, AuthorizationPolicy, JwksFormat, RequestAuthentication
from citadel.authz.policy_loader import load_policy_dir, load_policy_file, parse_policy_text
from tests.unit.authz.conftest import FRONTEND, WritePolicy, allow_policy, request_authentication

HEADER = "apiVersion: authz.citadel/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\n"


def _error(text: str) -> PolicyError:
    with pytest.raises(PolicyError) as info:
        parse_policy_text(text, "policies/p.yaml")
    return info.value


def test_full_authorization_policy_loads_every_field() -> None:
    text = (
        HEADER
        + """spec:
  action: DENY
  targets: ["spiffe://example.org/ns/prod/sa/backend"]
  rules:
  - from:
    - source:
        principals: ["spiffe://example.org/ns/prod/*"]
        notPrincipals: ["*/sa/bad"]
        namespaces: ["prod"]
        requestPrincipals: ["https://issuer.example/*"]
        ipBlocks: ["10.0.0.0/8"]
    to:
    - operation:
        grpcMethods: ["/pkg.Svc/Get", "/pkg.Other/*"]
        methods: ["GET"]
        paths: ["/api/*"]
        hosts: ["*.example.org"]
        ports: [8080, "9090"]
    when:
    - key: request.auth.claims[groups]
      values: ["admins"]
    - key: source.ip
      notValues: ["10.1.0.0/16"]
"""
    )
    (policy,) = parse_policy_text(text, "p.yaml")
    assert isinstance(policy, AuthorizationPolicy)
    assert policy.action is Action.DENY
    rule = policy.rules[0]
    assert rule.sources[0].not_principals == ("*/sa/bad",)
    assert rule.operations[0].ports == ("8080", "9090")
    assert rule.conditions[1].not_values == ("10.1.0.0/16",)


def test_action_defaults_to_allow() -> None:
    (policy,) = parse_policy_text(HEADER + "spec:\n  rules: [{}]\n", "p.yaml")
    assert isinstance(policy, AuthorizationPolicy)
    assert policy.action is Action.ALLOW


@pytest.mark.parametrize(
    ("spec", "field", "problem"),
    [
        (
            'rules: [{from: [{source: {principals: ["spiffe://example.org/ns/a/sa/b/"]}}]}]',
            "spec.rules[0].from[0].source.principals[0]",
            "path must not end with '/'",
        ),
        (
            'rules: [{from: [{source: {principals: ["spiffe://Example.org/x"]}}]}]',
            "spec.rules[0].from[0].source.principals[0]",
            "lowercase",
        ),
        (
            'rules: [{from: [{source: {principal: ["spiffe://example.org/x"]}}]}]',
            "spec.rules[0].from[0].source.principal",
            "unknown field",
        ),
        ("action: PERMIT", "spec.action", "not one of ALLOW, DENY, AUDIT"),
        (
            'rules: [{to: [{operation: {grpcMethods: ["pkg.Svc/Get"]}}]}]',
            "spec.rules[0].to[0].operation.grpcMethods[0]",
            "gRPC method",
        ),
        (
            "rules: [{to: [{operation: {ports: [70000]}}]}]",
            "spec.rules[0].to[0].operation.ports[0]",
            "1 to 65535",
        ),
        (
            'rules: [{from: [{source: {ipBlocks: ["10.0.0.1/8"]}}]}]',
            "spec.rules[0].from[0].source.ipBlocks[0]",
            "host bits set",
        ),
        (
            'rules: [{when: [{key: "request.auth.claims[", values: ["x"]}]}]',
            "spec.rules[0].when[0].key",
            "request.auth.claims[groups]",
        ),
        (
            'rules: [{when: [{key: "request.time", values: ["x"]}]}]',
            "spec.rules[0].when[0].key",
            "unsupported key",
        ),
        ('rules: [{when: [{key: "source.ip"}]}]', "spec.rules[0].when[0]", "values"),
        ("rules: [{from: [{source: {}}]}]", "spec.rules[0].from[0].source", "matches everything"),
        ("rules: [{from: []}]", "spec.rules[0].from", "empty list"),
        (
            'rules: [{from: [{source: {principals: ["spiffe://example.org/a*b"]}}]}]',
            "spec.rules[0].from[0].source.principals[0]",
            "'*' is allowed only",
        ),
        (
            'rules: [{to: [{operation: {methods: ["get"]}}]}]',
            "spec.rules[0].to[0].operation.methods[0]",
            "upper case",
        ),
        (
            "rules: [{from: [{source: {namespaces: [true]}}]}]",
            "spec.rules[0].from[0].source.namespaces[0]",
            "must be a string",
        ),
    ],
    ids=[
        "principal-trailing-slash",
        "principal-uppercase-trust-domain",
        "misspelt-field",
        "unknown-action",
        "grpc-method-without-slash",
        "port-out-of-range",
        "cidr-with-host-bits",
        "bad-claim-key",
        "unsupported-condition-key",
        "condition-without-values",
        "empty-source",
        "empty-from-list",
        "wildcard-in-middle",
        "lowercase-http-method",
        "yaml-boolean-namespace",
    ],
)
def test_invalid_policy_error_names_file_and_field(spec: str, field: str, problem: str) -> None:
    error = _error(HEADER + "spec:\n  " + spec + "\n")
    assert error.source == "policies/p.yaml"
    assert error.field == field
    assert problem in error.problem
    assert str(error).startswith(f"policies/p.yaml: {field}: ")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [1\n", "not valid YAML at line 2"),
        ("a: &x [1]\nb: *x\n", "aliases are not allowed"),
        (HEADER + "spec: {}\nspec: {}\n", "duplicate key 'spec'"),
    ],
    ids=["syntax-error", "alias", "duplicate-key"],
)
def test_hostile_or_broken_yaml_is_refused(text: str, problem: str) -> None:
    error = _error(text)
    assert problem in str(error)


def test_wrong_api_version_is_refused() -> None:
    error = _error(HEADER.replace("authz.citadel/v1", "v2") + "spec: {}\n")
    assert error.field == "apiVersion"


def test_second_document_error_names_the_document() -> None:
    text = HEADER + "spec: {}\n---\n" + HEADER + "spec: {action: NOPE}\n"
    assert _error(text).field == "document[1].spec.action"


def test_request_authentication_with_inline_jwks_and_defaults(jwks_for: dict[str, object]) -> None:
    (policy,) = parse_policy_text(request_authentication(jwks=jwks_for), "ra.yaml")
    assert isinstance(policy, RequestAuthentication)
    (rule,) = policy.jwt_rules
    assert rule.from_headers[0].name == "authorization"
    assert rule.from_headers[0].prefix == "Bearer "
    assert rule.leeway == timedelta(seconds=30)
    assert rule.max_token_bytes == 8192
    assert rule.jwks.inline is not None


def test_request_authentication_uri_settings() -> None:
    text = request_authentication(
        jwks_uri="https://issuer.example/jwks",
        extra={"jwksRefreshInterval": "1h30m", "jwksFormat": "spiffe", "leeway": 5},
    )
    (policy,) = parse_policy_text(text, "ra.yaml")
    assert isinstance(policy, RequestAuthentication)
    (rule,) = policy.jwt_rules
    assert rule.jwks.refresh_interval == timedelta(hours=1, minutes=30)
    assert rule.jwks.format is JwksFormat.SPIFFE
    assert rule.leeway == timedelta(seconds=5)


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"jwks_uri": "file:///etc/passwd"}, "spec.jwtRules[0].jwksUri", "http(s) URL"),
        ({"jwks_file": "missing.json"}, "spec.jwtRules[0].jwksFile", "does not exist"),
        (
            {"jwks": {"keys": [{"kty": "RSA", "kid": "k", "n": "x", "e": "AQAB", "d": "y"}]}},
            "spec.jwtRules[0].jwks",
            "private key material",
        ),
        ({}, "spec.jwtRules[0]", "exactly one of jwks, jwksFile, jwksUri"),
        ({"jwks_uri": "https://x", "audiences": []}, "spec.jwtRules[0].audiences", "empty list"),
        (
            {"jwks_uri": "https://x", "extra": {"maxTokenBytes": 10}},
            "spec.jwtRules[0].maxTokenBytes",
            "between 256 and 65536",
        ),
        (
            {"jwks_uri": "https://x", "extra": {"leeway": "1d"}},
            "spec.jwtRules[0].leeway",
            "duration",
        ),
        (
            {
                "jwks_uri": "https://x",
                "extra": {"outputClaimToHeaders": [{"header": "authorization", "claim": "sub"}]},
            },
            "spec.jwtRules[0].outputClaimToHeaders[0].header",
            "cannot carry a claim",
        ),
    ],
    ids=[
        "file-scheme-uri",
        "missing-jwks-file",
        "private-key-in-jwks",
        "no-key-source",
        "empty-audiences",
        "tiny-max-token",
        "bad-leeway",
        "claim-into-authorization",
    ],
)
def test_invalid_request_authentication_is_refused(
    kwargs: dict[str, object], field: str, problem: str, tmp_path: Path
) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy_text(request_authentication(**kwargs), "ra.yaml", tmp_path)  # type: ignore[arg-type]
    assert info.value.field == field
    assert problem in info.value.problem


def test_relative_jwks_file_resolves_from_the_policy_file(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    (policy_dir / "keys.json").write_text('{"keys": []}')
    write_policy("ra.yaml", request_authentication(jwks_file="keys.json"))
    (policy,) = load_policy_dir(policy_dir).request_authentication
    assert policy.jwt_rules[0].jwks.file == str(policy_dir / "keys.json")


def test_directory_loads_yaml_files_in_name_order_and_skips_others(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy("b.yaml", allow_policy("second", principals=[FRONTEND]))
    write_policy("a.yml", allow_policy("first", principals=[FRONTEND]))
    write_policy("notes.txt", "not a policy")
    write_policy(".hidden.yaml", "garbage: [")
    policies = load_policy_dir(policy_dir)
    assert [p.name for p in policies.authorization] == ["first", "second"]


def test_duplicate_policy_names_across_files_are_refused(
    write_policy: WritePolicy, policy_dir: Path
) -> None:
    write_policy("a.yaml", allow_policy("same", principals=[FRONTEND]))
    write_policy("b.yaml", allow_policy("same", principals=[FRONTEND]))
    with pytest.raises(
        PolicyError, match=r"b\.yaml: metadata\.name: .*already defined in .*a\.yaml"
    ):
        load_policy_dir(policy_dir)


def test_missing_directory_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot list directory"):
        load_policy_dir(tmp_path / "absent")


def test_oversized_policy_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * (1 << 20))
    with pytest.raises(PolicyError, match="larger than"):
        load_policy_file(path)


def test_non_utf8_policy_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="not UTF-8"):
        load_policy_file(path)
