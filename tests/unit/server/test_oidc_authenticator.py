from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.authz.errors import TokenExpiredError
from citadel.authz.jwks import JwkSet, StaticJwks
from citadel.authz.jwt_verifier import JwtVerifier, JwtVerifierConfig
from citadel.authz.policy import JwksFormat
from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.server.authn.oidc import OidcAuthenticator, PrefixedSubject, SpiffeSubject
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError
from tests.integration.server.tokens import OIDC_AUDIENCE, OidcTestIssuer

TD = TrustDomain("cluster.local")


@pytest.fixture
def issuer(tmp_path: Path) -> OidcTestIssuer:
    return OidcTestIssuer(tmp_path)


def _authenticator(
    issuer: OidcTestIssuer, clock: ManualClock, mapping: SpiffeSubject | PrefixedSubject
) -> OidcAuthenticator:
    keys = JwkSet.parse(json.loads(issuer.jwks_file.read_text()), JwksFormat.JWKS)
    verifier = JwtVerifier(
        JwtVerifierConfig(issuer=issuer.issuer, audiences=frozenset({OIDC_AUDIENCE})),
        jwks=StaticJwks(keys),
        clock=clock,
    )
    return OidcAuthenticator(verifier=verifier, trust_domain=TD, mapping=mapping)


def _call(token: str) -> CallContext:
    return CallContext.from_metadata([("authorization", f"Bearer {token}")])


def test_spiffe_subject_in_our_trust_domain_is_the_identity(
    issuer: OidcTestIssuer, clock: ManualClock
) -> None:
    identity = "spiffe://cluster.local/ns/batch/sa/etl"
    caller = _authenticator(issuer, clock, SpiffeSubject()).authenticate(
        _call(issuer.token(identity, now=clock.now()))
    )
    assert caller is not None
    assert caller.identity == SpiffeId.parse(identity)
    assert caller.kind == "oidc"


@pytest.mark.parametrize(
    "subject",
    ["spiffe://other.org/ns/batch/sa/etl", "spiffe://cluster.local", "alice", "https://x/y"],
    ids=["foreign-trust-domain", "no-path", "not-an-id", "not-spiffe"],
)
def test_unusable_spiffe_subjects_are_refused(
    issuer: OidcTestIssuer, clock: ManualClock, subject: str
) -> None:
    with pytest.raises(CredentialRejectedError):
        _authenticator(issuer, clock, SpiffeSubject()).authenticate(
            _call(issuer.token(subject, now=clock.now()))
        )


def test_prefix_mapping_places_the_subject_under_the_prefix(
    issuer: OidcTestIssuer, clock: ManualClock
) -> None:
    caller = _authenticator(issuer, clock, PrefixedSubject("/oidc/users/")).authenticate(
        _call(issuer.token("alice-01", now=clock.now()))
    )
    assert caller is not None
    assert str(caller.identity) == "spiffe://cluster.local/oidc/users/alice-01"


@pytest.mark.parametrize(
    "subject",
    ["a/b", "..", ".", "al ice", "bob%2F", ""],
    ids=["slash", "dot-dot", "dot", "space", "percent", "empty"],
)
def test_prefix_mapping_accepts_only_one_path_segment(subject: str) -> None:
    with pytest.raises(ValueError):
        PrefixedSubject("oidc/users").identity(subject, TD)


def test_prefix_itself_must_be_a_valid_path() -> None:
    with pytest.raises(ValueError):
        PrefixedSubject("")
    with pytest.raises(ValueError):
        PrefixedSubject("oidc/../x")


def test_verifier_errors_propagate_as_authentication_errors(
    issuer: OidcTestIssuer, clock: ManualClock
) -> None:
    token = issuer.token("spiffe://cluster.local/ns/a/sa/b", now=clock.now())
    clock.advance(timedelta(hours=1))
    with pytest.raises(TokenExpiredError):
        _authenticator(issuer, clock, SpiffeSubject()).authenticate(_call(token))


def test_join_tokens_and_absent_tokens_are_not_oidc(
    issuer: OidcTestIssuer, clock: ManualClock
) -> None:
    authenticator = _authenticator(issuer, clock, SpiffeSubject())
    assert authenticator.authenticate(_call("jt.abc")) is None
    assert authenticator.authenticate(CallContext()) is None
