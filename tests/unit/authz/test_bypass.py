"""Bypass attempts. Each test names one attack and asserts the exact denial kind and status.

JWT attacks go through the real ext_authz gRPC ``Check`` over loopback; peer-identity
attacks go through real TLS gRPC channels to a server behind the interceptor. The policy
lets ``FRONTEND`` in *without* a token, so a 401 below is caused by the token alone: an
invalid token is rejected even where no policy needs one.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from prometheus_client import REGISTRY

from citadel.authz.enforcer import EnforcerOptions
from citadel.authz.errors import PolicyError
from citadel.authz.ext_authz_server import ExtAuthzServer
from citadel.authz.policy_store import PolicyStore
from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import TrustDomain
from tests.unit.authz.conftest import BACKEND, FOREIGN_FRONTEND, FRONTEND, Pki
from tests.unit.authz.pki import Authority
from tests.unit.authz.servers import (
    JwksHttpServer,
    Recorder,
    health_check,
    secure_channel,
    tls_grpc_server,
)
from tests.unit.authz.tokens import (
    AUDIENCE,
    ISSUER,
    Signer,
    hs256_with_secret,
    jwks_of,
    standard_claims,
    unsigned_token,
)

DOWN_ISSUER = "https://down.example"
TRUST = EnforcerOptions(trust_domains=frozenset({TrustDomain("example.org")}))


def _document(kind: str, name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": "authz.citadel/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}
    )


ALLOW_FRONTEND_OR_TOKEN = _document(
    "AuthorizationPolicy",
    "frontend-or-token",
    {
        "action": "ALLOW",
        "rules": [
            {"from": [{"source": {"principals": [FRONTEND]}}]},
            {"from": [{"source": {"requestPrincipals": ["*"]}}]},
        ],
    },
)


@pytest.fixture
def closed_url() -> str:
    with JwksHttpServer() as server:
        url = server.url
    return url  # nothing listens there any more


@pytest.fixture
def store(
    policy_dir: Path, clock: ManualClock, signer: Signer, ec_signer: Signer, closed_url: str
) -> PolicyStore:
    authn = _document(
        "RequestAuthentication",
        "jwt",
        {
            "jwtRules": [
                {"issuer": ISSUER, "audiences": [AUDIENCE], "jwks": jwks_of(signer, ec_signer)},
                {"issuer": DOWN_ISSUER, "audiences": [AUDIENCE], "jwksUri": closed_url},
            ]
        },
    )
    (policy_dir / "authn.yaml").write_text(authn)
    (policy_dir / "allow.yaml").write_text(ALLOW_FRONTEND_OR_TOKEN)
    return PolicyStore(policy_dir, clock=clock, options=TRUST)


@pytest.fixture
def recorder(store: PolicyStore) -> Recorder:
    return Recorder(store)


# ---- ext_authz -----------------------------------------------------------------------------


@dataclass
class ExtAuthz:
    stub: Any
    recorder: Recorder

    def check(
        self,
        *,
        principal: str = FRONTEND,
        certificate: bytes | None = None,
        headers: dict[str, str] | None = None,
        raw_headers: list[tuple[str, str]] | None = None,
    ) -> Any:
        request = external_auth_pb2.CheckRequest()
        source = request.attributes.source
        source.principal = principal
        if certificate is not None:
            source.certificate = urllib.parse.quote(certificate.decode())
        http = request.attributes.request.http
        http.method, http.path, http.host = "GET", "/api", "backend.example.org"
        for key, value in (headers or {}).items():
            http.headers[key] = value
        for key, value in raw_headers or []:
            http.header_map.headers.append(base_pb2.HeaderValue(key=key, raw_value=value.encode()))
        return self.stub.Check(request, timeout=10)


@pytest.fixture
def ext_authz(recorder: Recorder) -> Iterator[ExtAuthz]:
    server = ExtAuthzServer(recorder, "127.0.0.1:0")
    address = server.start()
    channel = grpc.insecure_channel(address)
    try:
        yield ExtAuthz(external_auth_pb2_grpc.AuthorizationStub(channel), recorder)
    finally:
        channel.close()
        server.stop(grace=None)


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _assert_denied(ext: ExtAuthz, response: Any, http_code: int, kind: str) -> None:
    assert response.denied_response.status.code == http_code
    assert response.status.code == (16 if http_code == 401 else 7)
    assert ext.recorder.last_kind == kind


def test_control_frontend_without_token_is_allowed(ext_authz: ExtAuthz) -> None:
    response = ext_authz.check()
    assert response.status.code == 0
    assert ext_authz.recorder.last.allowed


def test_control_valid_token_is_allowed(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer
) -> None:
    response = ext_authz.check(
        principal=BACKEND, headers=_bearer(signer.token(standard_claims(clock.now())))
    )
    assert response.status.code == 0
    assert ext_authz.recorder.last.decision.rule == 1


def test_alg_none_is_rejected(ext_authz: ExtAuthz, clock: ManualClock, signer: Signer) -> None:
    token = unsigned_token(standard_claims(clock.now()), kid=signer.kid)
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_bad_algorithm")


def test_hs256_signed_with_the_rsa_public_key_is_rejected(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer
) -> None:
    token = hs256_with_secret(standard_claims(clock.now()), signer.public_pem(), kid=signer.kid)
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_bad_algorithm")


def test_hs256_signed_with_the_ec_public_key_is_rejected(
    ext_authz: ExtAuthz, clock: ManualClock, ec_signer: Signer
) -> None:
    token = hs256_with_secret(
        standard_claims(clock.now()), ec_signer.public_pem(), kid=ec_signer.kid
    )
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_bad_algorithm")


def test_expired_token_is_rejected(ext_authz: ExtAuthz, clock: ManualClock, signer: Signer) -> None:
    token = signer.token(standard_claims(clock.now()))
    clock.advance(timedelta(hours=2))
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_expired")


def test_not_yet_valid_token_is_rejected(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer
) -> None:
    start = int(clock.now().timestamp()) + 600
    token = signer.token(standard_claims(clock.now(), nbf=start, exp=start + 3600))
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_not_yet_valid")


def test_wrong_audience_is_rejected(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer
) -> None:
    token = signer.token(standard_claims(clock.now(), aud="someone-else"))
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_bad_audience")


def test_wrong_issuer_is_rejected(ext_authz: ExtAuthz, clock: ManualClock, signer: Signer) -> None:
    token = signer.token(standard_claims(clock.now(), iss="https://evil.example"))
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_bad_issuer")


def test_unknown_kid_is_rejected(ext_authz: ExtAuthz, clock: ManualClock) -> None:
    token = Signer("RS256", kid="never-published").token(standard_claims(clock.now()))
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_unknown_kid")


def test_jwks_url_that_cannot_be_fetched_fails_closed(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer
) -> None:
    token = signer.token(standard_claims(clock.now(), iss=DOWN_ISSUER))
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "jwks_unavailable")


def test_token_in_two_authorization_headers_is_rejected(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer
) -> None:
    good = signer.token(standard_claims(clock.now()))
    raw = [("authorization", f"Bearer {good}"), ("authorization", "Bearer x.y.z")]
    _assert_denied(ext_authz, ext_authz.check(raw_headers=raw), 401, "token_ambiguous")


def test_token_in_comma_merged_authorization_header_is_rejected(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer
) -> None:
    good = signer.token(standard_claims(clock.now()))
    merged = {"authorization": f"Bearer {good},Bearer x.y.z"}
    _assert_denied(ext_authz, ext_authz.check(headers=merged), 401, "token_ambiguous")


def test_oversized_token_is_rejected(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer
) -> None:
    token = signer.token(standard_claims(clock.now(), padding="A" * 9000))
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, "token_too_large")


@pytest.mark.parametrize(
    "override",
    [{"aud": 42}, {"exp": "never"}, {"nbf": [1]}, {"iss": 1}],
    ids=["aud-number", "exp-string", "nbf-list", "iss-number"],
)
def test_claims_of_the_wrong_type_are_rejected(
    ext_authz: ExtAuthz, clock: ManualClock, signer: Signer, override: dict[str, Any]
) -> None:
    claims = standard_claims(clock.now())
    claims.update(override)
    token = signer.token(claims)
    kind = "token_bad_issuer" if "iss" in override else "token_bad_claim"
    _assert_denied(ext_authz, ext_authz.check(headers=_bearer(token)), 401, kind)


def test_principal_with_different_case_is_denied(ext_authz: ExtAuthz) -> None:
    response = ext_authz.check(principal="spiffe://example.org/ns/prod/sa/Frontend")
    _assert_denied(ext_authz, response, 403, "no_allow_match")


def test_principal_with_trailing_slash_is_denied(ext_authz: ExtAuthz) -> None:
    response = ext_authz.check(principal=FRONTEND + "/")
    _assert_denied(ext_authz, response, 401, "invalid_peer")


def test_foreign_trust_domain_certificate_via_ext_authz_is_denied(
    ext_authz: ExtAuthz, pki: Pki
) -> None:
    response = ext_authz.check(principal=FOREIGN_FRONTEND, certificate=pki.foreign.cert_pem)
    _assert_denied(ext_authz, response, 403, "foreign_trust_domain")


def test_forwarded_certificate_that_disagrees_with_the_principal_is_rejected(
    ext_authz: ExtAuthz, pki: Pki
) -> None:
    response = ext_authz.check(principal=FRONTEND, certificate=pki.foreign.cert_pem)
    _assert_denied(ext_authz, response, 401, "invalid_peer")


def test_garbage_forwarded_certificate_is_rejected(ext_authz: ExtAuthz) -> None:
    response = ext_authz.check(certificate=b"-----BEGIN CERTIFICATE-----\nnope\n")
    _assert_denied(ext_authz, response, 401, "invalid_peer")


def test_peer_without_certificate_or_principal_is_anonymous_and_denied(ext_authz: ExtAuthz) -> None:
    response = ext_authz.check(principal="")
    _assert_denied(ext_authz, response, 403, "no_allow_match")
    assert ext_authz.recorder.last.principal is None


# ---- gRPC interceptor over real TLS --------------------------------------------------------


def _call(
    port: int, ca: Authority, client: Any, metadata: tuple[tuple[str, str], ...] = ()
) -> grpc.RpcError:
    with secure_channel(port, ca, client) as channel, pytest.raises(grpc.RpcError) as info:
        health_check(channel, metadata)
    return info.value


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_token_in_two_authorization_metadata_entries_is_rejected(
    kind: str, recorder: Recorder, pki: Pki, clock: ManualClock, signer: Signer
) -> None:
    good = signer.token(standard_claims(clock.now()))
    metadata = (("authorization", f"Bearer {good}"), ("authorization", f"Bearer {good}x"))
    with tls_grpc_server(kind, recorder, server_leaf=pki.server, roots=pki.ca.cert_pem) as port:
        error = _call(port, pki.ca, pki.frontend, metadata)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "unauthenticated"
    assert recorder.last_kind == "token_ambiguous"


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_foreign_trust_domain_certificate_via_interceptor_is_denied(
    kind: str, recorder: Recorder, pki: Pki
) -> None:
    federated_roots = pki.ca.cert_pem + pki.foreign_ca.cert_pem
    with tls_grpc_server(kind, recorder, server_leaf=pki.server, roots=federated_roots) as port:
        error = _call(port, pki.ca, pki.foreign)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "permission denied"
    assert recorder.last_kind == "foreign_trust_domain"


def test_certificate_from_an_untrusted_ca_never_reaches_the_handler(
    recorder: Recorder, pki: Pki
) -> None:
    with tls_grpc_server("sync", recorder, server_leaf=pki.server, roots=pki.ca.cert_pem) as port:
        error = _call(port, pki.ca, pki.foreign)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert recorder.results == []


@pytest.mark.parametrize("kind", ["sync", "aio"])
def test_peer_with_no_certificate_is_anonymous_and_denied(
    kind: str, recorder: Recorder, pki: Pki
) -> None:
    with tls_grpc_server(
        kind, recorder, server_leaf=pki.server, roots=pki.ca.cert_pem, require_client_auth=False
    ) as port:
        error = _call(port, pki.ca, None)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert recorder.last_kind == "no_allow_match"
    assert recorder.last.principal is None


def test_peer_with_no_certificate_is_refused_where_client_certs_are_required(
    recorder: Recorder, pki: Pki
) -> None:
    with tls_grpc_server("sync", recorder, server_leaf=pki.server, roots=pki.ca.cert_pem) as port:
        error = _call(port, pki.ca, None)
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert recorder.results == []


def test_certificate_principal_with_different_case_is_denied(recorder: Recorder, pki: Pki) -> None:
    client = pki.ca.issue(["spiffe://example.org/ns/prod/sa/Frontend"])
    with tls_grpc_server("sync", recorder, server_leaf=pki.server, roots=pki.ca.cert_pem) as port:
        error = _call(port, pki.ca, client)
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert recorder.last_kind == "no_allow_match"


def test_certificate_principal_with_trailing_slash_is_rejected(
    recorder: Recorder, pki: Pki
) -> None:
    client = pki.ca.issue([FRONTEND + "/"])
    with tls_grpc_server("sync", recorder, server_leaf=pki.server, roots=pki.ca.cert_pem) as port:
        error = _call(port, pki.ca, client)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert recorder.last_kind == "invalid_peer"


def test_certificate_with_two_uri_sans_is_rejected(recorder: Recorder, pki: Pki) -> None:
    client = pki.ca.issue([FRONTEND, BACKEND])
    with tls_grpc_server("sync", recorder, server_leaf=pki.server, roots=pki.ca.cert_pem) as port:
        error = _call(port, pki.ca, client)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert recorder.last_kind == "invalid_peer"


# ---- policy loading --------------------------------------------------------------------------


def test_malformed_policy_yaml_is_refused_at_load(policy_dir: Path, clock: ManualClock) -> None:
    (policy_dir / "allow.yaml").write_text(
        ALLOW_FRONTEND_OR_TOKEN.replace('"ALLOW"', '"ALLOW", "rules": 3')
    )
    with pytest.raises(
        PolicyError, match=r"allow\.yaml: not valid YAML|allow\.yaml: .*duplicate key"
    ):
        PolicyStore(policy_dir, clock=clock)


def test_malformed_policy_yaml_on_reload_keeps_the_old_policy(
    ext_authz: ExtAuthz, store: PolicyStore, policy_dir: Path
) -> None:
    failures = REGISTRY.get_sample_value("citadel_authz_policy_reload_failures_total") or 0.0
    (policy_dir / "allow.yaml").write_text("apiVersion: authz.citadel/v1\nkind: [\n")
    assert store.reload() is False
    assert REGISTRY.get_sample_value("citadel_authz_policy_reload_failures_total") == failures + 1
    assert ext_authz.check().status.code == 0
    _assert_denied(ext_authz, ext_authz.check(principal=BACKEND), 403, "no_allow_match")
