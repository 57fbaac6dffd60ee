"""Hostile and malformed requests: each gets its status code, issues nothing, and is counted.

Every test measures the audit chain before and after (nothing issued means no new audit row)
and checks that ``citadel_server_csr_sign_err_count{error=<kind>}`` counted the refusal.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from datetime import timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from google.rpc import error_details_pb2, status_pb2

from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_templates import CaSpec, LeafSpec, ca_builder, leaf_builder
from citadel.server.rate_limit import RateLimit
from tests.fakes.istio_agent_client import IstioAgentClient, new_workload_csr
from tests.fixtures.der import assemble_signed, split_signed
from tests.integration.server.conftest import NODE_AGENT_PREFIX, ServedCa, ServeFactory
from tests.integration.server.tokens import K8S_ISSUER, kube_token, unsigned_token

WEB = "spiffe://cluster.local/ns/default/sa/web"


def _refused(
    served: ServedCa,
    call: Callable[[], object],
    code: grpc.StatusCode,
    kind: str,
    *,
    authentication: bool = False,
) -> grpc.Call:
    audit_before = served.audit_count()
    rejected_before = served.rejections(kind)
    auth_before = served.metric("citadel_server_authentication_failure_count_total", reason=kind)
    with pytest.raises(grpc.RpcError) as caught:
        call()
    error = caught.value
    assert isinstance(error, grpc.Call)
    assert error.code() is code, error.details()
    assert "Traceback" not in (error.details() or "")
    assert served.audit_count() == audit_before, "something was issued"
    assert served.rejections(kind) == rejected_before + 1
    if authentication:
        after = served.metric("citadel_server_authentication_failure_count_total", reason=kind)
        assert after == auth_before + 1
    return error


@pytest.fixture
def web_csr() -> str:
    return new_workload_csr(WEB)[1]


@pytest.fixture
def web_agent(served: ServedCa) -> IstioAgentClient:
    return served.agent(served.k8s_token("default", "web"))


# --- authentication -----------------------------------------------------------------------


def test_request_without_credential_is_unauthenticated(served: ServedCa, web_csr: str) -> None:
    agent = served.agent(None)
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "no_credential",
        authentication=True,
    )


def test_malformed_jwt_is_unauthenticated(served: ServedCa, web_csr: str) -> None:
    agent = served.agent("this-is-not-a-jwt")
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_malformed",
        authentication=True,
    )


@pytest.mark.parametrize(
    ("overrides", "kind"),
    [
        ({"exp": -60, "iat": -600, "nbf": -600}, "token_expired"),
        ({"nbf": 600, "iat": None}, "token_not_yet_valid"),
        ({"aud": "someone-else"}, "token_bad_audience"),
        ({"iss": "https://evil.example"}, "token_bad_issuer"),
    ],
    ids=["expired", "not-yet-valid", "wrong-audience", "wrong-issuer"],
)
def test_oidc_token_with_bad_claim_is_unauthenticated(
    served: ServedCa, web_csr: str, overrides: dict[str, int | str | None], kind: str
) -> None:
    now = served.clock.now()
    claims: dict[str, object] = {
        k: (int(now.timestamp()) + v if isinstance(v, int) else v) for k, v in overrides.items()
    }
    token = served.oidc.token(WEB, now=now, claims=claims)
    agent = served.agent(token)
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        kind,
        authentication=True,
    )


def test_oidc_token_with_alg_none_is_unauthenticated(served: ServedCa, web_csr: str) -> None:
    agent = served.agent(served.oidc.alg_none_token(WEB, now=served.clock.now()))
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_bad_algorithm",
        authentication=True,
    )


def test_oidc_token_hs256_signed_with_the_public_key_is_unauthenticated(
    served: ServedCa, web_csr: str
) -> None:
    agent = served.agent(served.oidc.hs256_with_public_key_token(WEB, now=served.clock.now()))
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_bad_algorithm",
        authentication=True,
    )


def test_oidc_token_with_unknown_kid_is_unauthenticated(served: ServedCa, web_csr: str) -> None:
    agent = served.agent(served.oidc.token(WEB, now=served.clock.now(), kid="no-such-key"))
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "token_unknown_kid",
        authentication=True,
    )


def test_token_review_saying_unauthenticated_is_unauthenticated(
    served: ServedCa, web_csr: str
) -> None:
    token = kube_token("default", "web", now=served.clock.now(), lifetime=timedelta(hours=1))
    agent = served.agent(token)  # never registered with the fake API server
    reviews_before = served.reviews.review_count
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "credential_rejected",
        authentication=True,
    )
    assert served.reviews.review_count == reviews_before + 1


def test_token_review_user_that_is_not_a_service_account_is_unauthenticated(
    served: ServedCa, web_csr: str
) -> None:
    token = kube_token("default", "web", now=served.clock.now(), lifetime=timedelta(hours=1))
    served.reviews.allow(token, "alice@example.org")
    agent = served.agent(token)
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "credential_rejected",
        authentication=True,
    )


def test_token_review_service_account_without_name_is_unauthenticated(
    served: ServedCa, web_csr: str
) -> None:
    token = kube_token("default", "web", now=served.clock.now(), lifetime=timedelta(hours=1))
    served.reviews.allow(token, "system:serviceaccount:default:")
    agent = served.agent(token)
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "credential_rejected",
        authentication=True,
    )


def test_used_join_token_is_unauthenticated(served: ServedCa) -> None:
    identity = "spiffe://cluster.local/ns/vm/sa/once"
    created = served.join_token(identity)
    _, csr = new_workload_csr(identity)
    agent = served.agent(f"jt.{created.token}")
    agent.csr_sign(csr)
    _refused(
        served,
        lambda: agent.csr_sign(csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "credential_rejected",
        authentication=True,
    )


def test_expired_join_token_is_unauthenticated(served: ServedCa) -> None:
    identity = "spiffe://cluster.local/ns/vm/sa/late"
    created = served.join_token(identity, ttl=timedelta(seconds=30))
    _, csr = new_workload_csr(identity)
    agent = served.agent(f"jt.{created.token}")
    served.clock.advance(timedelta(seconds=31))
    try:
        _refused(
            served,
            lambda: agent.csr_sign(csr),
            grpc.StatusCode.UNAUTHENTICATED,
            "credential_rejected",
            authentication=True,
        )
    finally:
        served.clock.advance(-timedelta(seconds=31))


def _signed_leaf(
    signer_cert: x509.Certificate,
    sign: Callable[[x509.CertificateBuilder], x509.Certificate],
    spiffe_id: str,
    served: ServedCa,
) -> tuple[bytes, x509.Certificate]:
    key = generate_private_key(KeyType.EC_P256)
    now = served.clock.now()
    spec = LeafSpec(
        spiffe_id=SpiffeId.parse(spiffe_id),
        public_key=key.public_key(),
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(hours=1),
    )
    return private_key_to_pkcs8_pem(key), sign(leaf_builder(spec, signer_cert))


def test_client_certificate_from_another_trust_domain_is_unauthenticated(
    served: ServedCa, web_csr: str
) -> None:
    signer = served.ca.issuer.signer  # our own CA, so the TLS layer accepts the chain
    key_pem, leaf = _signed_leaf(
        signer.cert,
        signer.key.sign_certificate,
        "spiffe://other.example/ns/default/sa/web",
        served,
    )
    chain = certificates_to_pem([leaf, *signer.intermediates[1:], signer.cert]).encode()
    agent = served.agent(None, mtls=True, client_chain_pem=chain, client_key_pem=key_pem)
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "credential_rejected",
        authentication=True,
    )


def test_client_certificate_from_another_ca_is_refused_before_any_call(
    served: ServedCa, web_csr: str
) -> None:
    """The mTLS listener verifies client chains against our roots during the handshake, so a
    certificate from another CA never reaches the service: the call fails UNAVAILABLE and
    nothing is processed (the authenticator's own re-verification of such a chain is covered
    in tests/unit/server/test_mtls_authenticator.py)."""
    td = TrustDomain("cluster.local")
    other_key = ec.generate_private_key(ec.SECP256R1())
    now = served.clock.now()
    other_root = ca_builder(
        CaSpec(
            trust_domain=td,
            common_name="impostor",
            public_key=other_key.public_key(),
            not_before=now - timedelta(days=1),
            not_after=now + timedelta(days=1),
        )
    ).sign(other_key, hashes.SHA256())
    key_pem, leaf = _signed_leaf(
        other_root, lambda b: b.sign(other_key, hashes.SHA256()), WEB, served
    )
    chain = certificates_to_pem([leaf]).encode()
    agent = served.agent(None, mtls=True, client_chain_pem=chain, client_key_pem=key_pem)
    audit_before = served.audit_count()
    requests_before = served.metric("citadel_server_csr_count_total")
    with pytest.raises(grpc.RpcError) as caught:
        agent.csr_sign(web_csr)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert served.audit_count() == audit_before
    assert served.metric("citadel_server_csr_count_total") == requests_before


# --- authorization -----------------------------------------------------------------------------


def test_csr_for_another_identity_is_permission_denied(
    served: ServedCa, web_agent: IstioAgentClient
) -> None:
    _, csr = new_workload_csr("spiffe://cluster.local/ns/default/sa/admin")
    _refused(
        served,
        lambda: web_agent.csr_sign(csr),
        grpc.StatusCode.PERMISSION_DENIED,
        "identity_mismatch",
    )


def test_impersonation_by_a_caller_that_is_not_a_trusted_agent_is_denied(
    served: ServedCa, web_agent: IstioAgentClient
) -> None:
    target = f"{NODE_AGENT_PREFIX}/sa/frontend"
    _, csr = new_workload_csr(target)
    _refused(
        served,
        lambda: web_agent.csr_sign(csr, impersonated_identity=target),
        grpc.StatusCode.PERMISSION_DENIED,
        "impersonation_denied",
    )


@pytest.mark.parametrize(
    "target",
    [
        "spiffe://cluster.local/ns/kube-system/sa/admin",
        "spiffe://cluster.local/ns/appsx/sa/frontend",  # a prefix is matched by segment
        "spiffe://other.example/ns/apps/sa/frontend",
    ],
    ids=["other-namespace", "sibling-with-shared-text-prefix", "other-trust-domain"],
)
def test_impersonation_outside_the_granted_prefix_is_denied(served: ServedCa, target: str) -> None:
    agent = served.agent(served.k8s_token("istio-system", "ztunnel"))
    _, csr = new_workload_csr(target)
    _refused(
        served,
        lambda: agent.csr_sign(csr, impersonated_identity=target),
        grpc.StatusCode.PERMISSION_DENIED,
        "impersonation_denied",
    )


# --- malformed CSRs ------------------------------------------------------------------------------


def _csr_with(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    names: list[x509.GeneralName],
    extensions: tuple[x509.ExtensionType, ...] = (),
) -> str:
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=True)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _bad_signature_csr() -> str:
    key = generate_private_key(KeyType.EC_P256)
    ours = build_csr(key, SpiffeId.parse(WEB)).public_bytes(serialization.Encoding.DER)
    theirs = build_csr(generate_private_key(KeyType.EC_P256), SpiffeId.parse(WEB)).public_bytes(
        serialization.Encoding.DER
    )
    mixed = assemble_signed(
        split_signed(ours).tbs, split_signed(ours).algorithm, split_signed(theirs).signature
    )
    return x509.load_der_x509_csr(mixed).public_bytes(serialization.Encoding.PEM).decode()


BAD_CSRS: dict[str, Callable[[], str]] = {
    "two-uri-sans": lambda: _csr_with(
        ec.generate_private_key(ec.SECP256R1()),
        [
            x509.UniformResourceIdentifier(WEB),
            x509.UniformResourceIdentifier("spiffe://cluster.local/ns/default/sa/db"),
        ],
    ),
    "dns-names": lambda: csr_to_pem(
        build_csr(
            generate_private_key(KeyType.EC_P256),
            SpiffeId.parse(WEB),
            dns_names=("web.default.svc",),
        )
    ),
    "ip-address": lambda: _csr_with(
        ec.generate_private_key(ec.SECP256R1()),
        [x509.UniformResourceIdentifier(WEB), x509.IPAddress(ipaddress.ip_address("10.1.2.3"))],
    ),
    "ca-request": lambda: _csr_with(
        ec.generate_private_key(ec.SECP256R1()),
        [x509.UniformResourceIdentifier(WEB)],
        (x509.BasicConstraints(ca=True, path_length=None),),
    ),
    "bad-signature": _bad_signature_csr,
    "weak-rsa-1024-key": lambda: _csr_with(
        rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505
        [x509.UniformResourceIdentifier(WEB)],
    ),
    "garbage-bytes": lambda: "\x00\x01garbage\xff-----BEGIN nothing-----",
    "empty": lambda: "",
}


@pytest.mark.parametrize("make_csr", list(BAD_CSRS.values()), ids=list(BAD_CSRS))
def test_malformed_csr_is_invalid_argument(
    served: ServedCa, web_agent: IstioAgentClient, make_csr: Callable[[], str]
) -> None:
    csr = make_csr()
    _refused(
        served, lambda: web_agent.csr_sign(csr), grpc.StatusCode.INVALID_ARGUMENT, "invalid_csr"
    )


def test_csr_over_64_kib_is_invalid_argument(served: ServedCa, web_agent: IstioAgentClient) -> None:
    oversized = "A" * (100 * 1024)
    _refused(
        served,
        lambda: web_agent.csr_sign(oversized),
        grpc.StatusCode.INVALID_ARGUMENT,
        "request_too_large",
    )


def test_one_mib_request_is_refused_by_the_transport_and_counted(
    served: ServedCa, web_agent: IstioAgentClient
) -> None:
    one_mib = "A" * (1024 * 1024)
    error = _refused(
        served,
        lambda: web_agent.csr_sign(one_mib),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "request_unreadable",
    )
    assert "larger than max" in (error.details() or "")


def test_ttl_beyond_the_maximum_is_invalid_argument(
    served: ServedCa, web_agent: IstioAgentClient, web_csr: str
) -> None:
    too_long = int((served.ca.issuer.max_ttl + timedelta(seconds=1)).total_seconds())
    _refused(
        served,
        lambda: web_agent.csr_sign(web_csr, too_long),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_ttl",
    )


def test_negative_ttl_is_invalid_argument(
    served: ServedCa, web_agent: IstioAgentClient, web_csr: str
) -> None:
    _refused(
        served,
        lambda: web_agent.csr_sign(web_csr, -5),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_ttl",
    )


def test_non_string_impersonated_identity_is_invalid_argument(
    served: ServedCa, web_agent: IstioAgentClient, web_csr: str
) -> None:
    _refused(
        served,
        lambda: web_agent.request(web_csr, metadata_fields={"ImpersonatedIdentity": 42}),
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_request",
    )


# --- rate limits ----------------------------------------------------------------------------------


@pytest.fixture
def limited(serve: ServeFactory) -> Iterator[ServedCa]:
    yield serve(identity_limit=RateLimit(rate=0.01, burst=2))


def _retry_hint(error: grpc.Call) -> tuple[int, int]:
    trailers = dict(error.trailing_metadata() or ())
    status = status_pb2.Status.FromString(trailers["grpc-status-details-bin"])
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    return int(trailers["retry-after"]), info.retry_delay.seconds


def test_rate_limit_exceeded_is_resource_exhausted_with_a_retry_hint(limited: ServedCa) -> None:
    agent = limited.agent(limited.k8s_token("default", "web"))
    for _ in range(2):
        agent.csr_sign(new_workload_csr(WEB)[1])
    csr = new_workload_csr(WEB)[1]

    error = _refused(
        limited, lambda: agent.csr_sign(csr), grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited"
    )

    retry_after, retry_delay = _retry_hint(error)
    assert 1 <= retry_after <= 100
    assert retry_delay == retry_after


def test_global_rate_limit_applies_before_authentication(serve: ServeFactory) -> None:
    served = serve(global_limit=RateLimit(rate=0.01, burst=1))
    anonymous = served.agent(None)
    csr = new_workload_csr(WEB)[1]
    _refused(
        served,
        lambda: anonymous.csr_sign(csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "no_credential",
        authentication=True,
    )
    error = _refused(
        served, lambda: anonymous.csr_sign(csr), grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited"
    )
    assert _retry_hint(error)[0] >= 1


def test_unknown_cluster_id_is_unauthenticated(served: ServedCa, web_csr: str) -> None:
    token = served.k8s_token("default", "web")
    agent = served.agent(token, cluster_id="some-other-cluster")
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "credential_rejected",
        authentication=True,
    )


def test_unsigned_token_from_the_cluster_issuer_is_checked_by_the_api_server(
    served: ServedCa, web_csr: str
) -> None:
    now = int(served.clock.now().timestamp())
    forged = unsigned_token({"alg": "none"}, {"iss": K8S_ISSUER, "sub": "x", "exp": now + 60})
    agent = served.agent(forged)
    _refused(
        served,
        lambda: agent.csr_sign(web_csr),
        grpc.StatusCode.UNAUTHENTICATED,
        "credential_rejected",
        authentication=True,
    )
