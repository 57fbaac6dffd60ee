from __future__ import annotations

import pytest

from citadel.identity.spiffe_id import SpiffeId
from citadel.server.authn.base import Caller
from citadel.server.errors import ImpersonationDeniedError, InvalidRequestError
from citadel.server.impersonation import ImpersonationPolicy, is_within, parse_prefix

AGENT = SpiffeId.parse("spiffe://td/ns/istio-system/sa/ztunnel")
WEB = SpiffeId.parse("spiffe://td/ns/apps/sa/web")
POLICY = ImpersonationPolicy({AGENT: (parse_prefix("spiffe://td/ns/apps/"),)})


def _caller(identity: SpiffeId) -> Caller:
    return Caller(identity=identity, kind="k8s")


@pytest.mark.parametrize(
    ("identity", "prefix", "inside"),
    [
        ("spiffe://td/ns/apps/sa/web", "spiffe://td/ns/apps", True),
        ("spiffe://td/ns/apps", "spiffe://td/ns/apps", True),
        ("spiffe://td/ns/appsx/sa/web", "spiffe://td/ns/apps", False),
        ("spiffe://td/ns/apps/sa/web", "spiffe://td", True),
        ("spiffe://other/ns/apps/sa/web", "spiffe://td/ns/apps", False),
        ("spiffe://td/ns", "spiffe://td/ns/apps", False),
    ],
    ids=["below", "equal", "text-prefix-only", "whole-trust-domain", "other-td", "above"],
)
def test_prefix_matching_is_by_segment(identity: str, prefix: str, inside: bool) -> None:
    assert is_within(SpiffeId.parse(identity), parse_prefix(prefix)) is inside


def test_own_identity_needs_no_grant() -> None:
    assert POLICY.target_identity(_caller(WEB), None) == WEB
    assert POLICY.target_identity(_caller(WEB), str(WEB)) == WEB


def test_trusted_agent_gets_identities_inside_its_prefix() -> None:
    assert POLICY.target_identity(_caller(AGENT), str(WEB)) == WEB


@pytest.mark.parametrize(
    ("caller", "requested"),
    [
        (WEB, "spiffe://td/ns/apps/sa/db"),
        (AGENT, "spiffe://td/ns/kube-system/sa/admin"),
        (AGENT, "spiffe://td/ns/apps-2/sa/x"),
        (AGENT, "spiffe://td"),
    ],
    ids=["not-an-agent", "outside-prefix", "sibling-prefix", "trust-domain-id"],
)
def test_everything_else_is_denied(caller: SpiffeId, requested: str) -> None:
    with pytest.raises(ImpersonationDeniedError):
        POLICY.target_identity(_caller(caller), requested)


def test_malformed_request_from_a_trusted_agent_is_invalid() -> None:
    with pytest.raises(InvalidRequestError):
        POLICY.target_identity(_caller(AGENT), "not a spiffe id")


def test_malformed_request_from_anyone_else_is_denied_without_detail() -> None:
    with pytest.raises(ImpersonationDeniedError):
        POLICY.target_identity(_caller(WEB), "not a spiffe id")


def test_no_grants_means_nobody_impersonates() -> None:
    with pytest.raises(ImpersonationDeniedError):
        ImpersonationPolicy().target_identity(_caller(AGENT), str(WEB))
