"""The enforcer: peer identity, request authentication and the engine, together."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from citadel.authz.enforcer import AccessRequest, Enforcer, EnforcerOptions
from citadel.authz.policy import Action
from citadel.authz.policy_loader import load_policy_dir
from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import TrustDomain
from tests.unit.authz.conftest import (
    BACKEND,
    FOREIGN_FRONTEND,
    FRONTEND,
    Pki,
    WritePolicy,
    allow_policy,
    request_authentication,
)
from tests.unit.authz.tokens import ISSUER, Signer, jwks_of, standard_claims


def _enforcer(policy_dir: Path, clock: ManualClock, **options: Any) -> Enforcer:
    return Enforcer(load_policy_dir(policy_dir), clock=clock, options=EnforcerOptions(**options))


def _bearer(token: str) -> dict[str, tuple[str, ...]]:
    return {"authorization": (f"Bearer {token}",)}


@pytest.fixture
def jwt_policies(write_policy: WritePolicy, signer: Signer) -> None:
    write_policy("ra.yaml", request_authentication(jwks=jwks_of(signer)))
    write_policy(
        "allow.yaml",
        allow_policy("alice-only", request_principals=[f"{ISSUER}/alice"]),
    )


@pytest.mark.usefixtures("jwt_policies")
def test_valid_token_sets_the_request_principal(
    policy_dir: Path, clock: ManualClock, signer: Signer
) -> None:
    result = _enforcer(policy_dir, clock).check(
        AccessRequest(headers=_bearer(signer.token(standard_claims(clock.now()))))
    )
    assert result.allowed
    assert result.token is not None and result.token.request_principal == f"{ISSUER}/alice"


@pytest.mark.usefixtures("jwt_policies")
def test_request_without_token_is_anonymous(policy_dir: Path, clock: ManualClock) -> None:
    result = _enforcer(policy_dir, clock).check(AccessRequest())
    assert not result.allowed
    assert result.error is not None and result.error.kind == "no_allow_match"
    assert result.token is None


@pytest.mark.usefixtures("jwt_policies")
def test_invalid_token_is_rejected_even_where_no_policy_needs_one(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock, signer: Signer
) -> None:
    write_policy("allow.yaml", allow_policy("anyone", principals=None))  # rules: [{}]
    enforcer = _enforcer(policy_dir, clock)
    assert enforcer.check(AccessRequest()).allowed
    expired = signer.token(standard_claims(clock.now(), exp=int(clock.now().timestamp()) - 3600))
    result = enforcer.check(AccessRequest(headers=_bearer(expired)))
    assert not result.allowed
    assert result.error is not None and result.error.kind == "token_expired"


def test_tokens_are_ignored_without_request_authentication(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy("allow.yaml", allow_policy("anyone"))
    result = _enforcer(policy_dir, clock).check(AccessRequest(headers=_bearer("garbage")))
    assert result.allowed and result.token is None


def test_required_token_missing_is_unauthenticated(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock, signer: Signer
) -> None:
    write_policy("ra.yaml", request_authentication(jwks=jwks_of(signer), required=True))
    write_policy("allow.yaml", allow_policy("anyone"))
    result = _enforcer(policy_dir, clock).check(AccessRequest())
    assert result.error is not None and result.error.kind == "token_missing"


@pytest.mark.usefixtures("jwt_policies")
@pytest.mark.parametrize(
    ("headers", "kind"),
    [
        ({"authorization": ("Bearer a.b.c", "Bearer d.e.f")}, "token_ambiguous"),
        ({"authorization": ("Bearer a.b.c,Bearer d.e.f",)}, "token_ambiguous"),
        ({"authorization": ("Bearer ",)}, "token_malformed"),
        ({"authorization": ("Bearer not-a-jwt",)}, "token_malformed"),
    ],
    ids=["repeated-header", "comma-merged-header", "empty-token", "not-a-jwt"],
)
def test_broken_token_headers_are_rejected(
    policy_dir: Path, clock: ManualClock, headers: dict[str, tuple[str, ...]], kind: str
) -> None:
    result = _enforcer(policy_dir, clock).check(AccessRequest(headers=headers))
    assert result.error is not None and result.error.kind == kind


@pytest.mark.usefixtures("jwt_policies")
def test_other_authorization_scheme_is_not_a_token(policy_dir: Path, clock: ManualClock) -> None:
    result = _enforcer(policy_dir, clock).check(
        AccessRequest(headers={"authorization": ("Basic dXNlcjpwYXNz",)})
    )
    assert result.error is not None and result.error.kind == "no_allow_match"


def test_custom_header_location_and_claim_to_header_output(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock, signer: Signer
) -> None:
    extra = {
        "fromHeaders": [{"name": "X-Token"}],
        "outputClaimToHeaders": [
            {"header": "x-jwt-sub", "claim": "sub"},
            {"header": "x-jwt-admin", "claim": "admin"},
            {"header": "x-jwt-absent", "claim": "absent"},
            {"header": "x-jwt-evil", "claim": "evil"},
        ],
    }
    write_policy("ra.yaml", request_authentication(jwks=jwks_of(signer), extra=extra))
    write_policy("allow.yaml", allow_policy("anyone"))
    token = signer.token(standard_claims(clock.now(), admin=True, evil="a\r\nx-injected: 1"))
    result = _enforcer(policy_dir, clock).check(AccessRequest(headers={"x-token": (token,)}))
    assert result.allowed
    assert result.response_headers == (("x-jwt-sub", "alice"), ("x-jwt-admin", "true"))
    assert set(result.strip_headers) == {"x-jwt-sub", "x-jwt-admin", "x-jwt-absent", "x-jwt-evil"}


def test_token_from_an_unknown_issuer_is_rejected(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock, signer: Signer
) -> None:
    write_policy("ra.yaml", request_authentication(jwks=jwks_of(signer)))
    write_policy("allow.yaml", allow_policy("anyone"))
    token = signer.token(standard_claims(clock.now(), iss="https://evil.example"))
    result = _enforcer(policy_dir, clock).check(AccessRequest(headers=_bearer(token)))
    assert result.error is not None and result.error.kind == "token_bad_issuer"


def test_request_authentication_targets(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock, signer: Signer
) -> None:
    text = json.loads(request_authentication(jwks=jwks_of(signer), required=True))
    text["spec"]["targets"] = [BACKEND]
    write_policy("ra.yaml", json.dumps(text))
    write_policy("allow.yaml", allow_policy("anyone"))
    enforcer = _enforcer(policy_dir, clock)
    assert enforcer.check(AccessRequest(destination=FRONTEND)).allowed
    result = enforcer.check(AccessRequest(destination=BACKEND))
    assert result.error is not None and result.error.kind == "token_missing"


def test_peer_certificate_gives_the_principal(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock, pki: Pki
) -> None:
    write_policy("allow.yaml", allow_policy("fe", principals=[FRONTEND]))
    enforcer = _enforcer(policy_dir, clock)
    result = enforcer.check(AccessRequest(peer_certificate=pki.frontend.cert_pem))
    assert result.allowed and result.principal == FRONTEND
    mismatch = enforcer.check(
        AccessRequest(peer_principal=BACKEND, peer_certificate=pki.frontend.cert_pem)
    )
    assert mismatch.error is not None and mismatch.error.kind == "invalid_peer"


@pytest.mark.parametrize(
    ("principal", "kind"),
    [
        (FOREIGN_FRONTEND, "foreign_trust_domain"),
        ("spiffe://example.org/a/", "invalid_peer"),
        ("https://x", "invalid_peer"),
    ],
    ids=["foreign-trust-domain", "invalid-spiffe-id", "not-spiffe"],
)
def test_peer_identity_checks(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock, principal: str, kind: str
) -> None:
    write_policy("allow.yaml", allow_policy("anyone"))
    enforcer = _enforcer(policy_dir, clock, trust_domains=frozenset({TrustDomain("example.org")}))
    result = enforcer.check(AccessRequest(peer_principal=principal))
    assert result.error is not None and result.error.kind == kind


def test_default_action_option_applies_without_allow_policies(
    policy_dir: Path, clock: ManualClock
) -> None:
    assert not _enforcer(policy_dir, clock).check(AccessRequest()).allowed
    assert _enforcer(policy_dir, clock, default_action=Action.ALLOW).check(AccessRequest()).allowed


def test_unparsable_source_ip_matches_no_ip_block(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy(
        "p.yaml",
        json.dumps(
            {
                "apiVersion": "authz.citadel/v1",
                "kind": "AuthorizationPolicy",
                "metadata": {"name": "net"},
                "spec": {"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]},
            }
        ),
    )
    enforcer = _enforcer(policy_dir, clock)
    assert enforcer.check(AccessRequest(source_ip="10.0.0.5")).allowed
    assert not enforcer.check(AccessRequest(source_ip="not-an-ip")).allowed


def test_decisions_and_denials_are_counted(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy("allow.yaml", allow_policy("fe", principals=[FRONTEND]))
    enforcer = _enforcer(policy_dir, clock)

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    allowed = sample("citadel_authz_decisions_total", result="allowed")
    denied = sample("citadel_authz_decisions_total", result="denied")
    no_match = sample("citadel_authz_denials_total", reason="no_allow_match")
    enforcer.check(AccessRequest(peer_principal=FRONTEND))
    enforcer.check(AccessRequest(peer_principal=BACKEND))
    enforcer.check(AccessRequest(peer_principal=BACKEND))
    assert sample("citadel_authz_decisions_total", result="allowed") == allowed + 1
    assert sample("citadel_authz_decisions_total", result="denied") == denied + 2
    assert sample("citadel_authz_denials_total", reason="no_allow_match") == no_match + 2


@pytest.mark.usefixtures("jwt_policies")
def test_denial_log_has_detail_but_never_the_token(
    policy_dir: Path, clock: ManualClock, signer: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    token = signer.token(standard_claims(clock.now(), aud="elsewhere"))
    with caplog.at_level("INFO", logger="citadel.authz.enforcer"):
        _enforcer(policy_dir, clock).check(AccessRequest(headers=_bearer(token)))
    assert "token_bad_audience" in caplog.text
    assert token not in caplog.text
    assert token.split(".")[2] not in caplog.text
