"""The CSR API over real gRPC/TLS, called the way istio-agent calls it."""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from citadel.identity.chain import verify_svid_chain
from citadel.identity.keys import private_key_to_pkcs8_pem, public_keys_equal
from citadel.identity.pem import certificates_to_pem, load_certificates_pem, serial_hex
from citadel.identity.spiffe_id import SpiffeId
from tests.fakes.istio_agent_client import new_workload_csr
from tests.integration.server.conftest import NODE_AGENT, ServedCa, ServeFactory

WEB = "spiffe://cluster.local/ns/default/sa/web"


def _issued_identity(chain: list[str], served: ServedCa) -> SpiffeId:
    leaf = load_certificates_pem(chain[0])[0]
    intermediates = [c for pem in chain[1:-1] for c in load_certificates_pem(pem)]
    roots = load_certificates_pem(chain[-1])
    return verify_svid_chain(leaf, intermediates, roots, at=served.clock.now())


def test_agent_with_service_account_token_gets_leaf_intermediate_and_root(served: ServedCa) -> None:
    token = served.k8s_token("default", "web")
    key, csr = new_workload_csr(WEB)
    audit_before = served.audit_count()

    chain = served.agent(token).csr_sign(csr, 3600)

    assert len(chain) == 3
    leaf = load_certificates_pem(chain[0])[0]
    assert public_keys_equal(leaf.public_key(), key)  # type: ignore[arg-type]
    assert _issued_identity(chain, served) == SpiffeId.parse(WEB)
    assert chain[-1] == served.root_pem.decode()
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == timedelta(hours=1, minutes=2)
    assert served.audit_count() == audit_before + 1


def test_zero_validity_gets_the_default_lifetime(served: ServedCa) -> None:
    token = served.k8s_token("default", "zero")
    _, csr = new_workload_csr("spiffe://cluster.local/ns/default/sa/zero")

    chain = served.agent(token).csr_sign(csr, 0)

    leaf = load_certificates_pem(chain[0])[0]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == served.ca.issuer.default_ttl + timedelta(minutes=2)


def test_issued_chain_verifies_with_openssl(served: ServedCa, tmp_path: Path) -> None:
    token = served.k8s_token("default", "openssl")
    _, csr = new_workload_csr("spiffe://cluster.local/ns/default/sa/openssl")
    chain = served.agent(token).csr_sign(csr)
    (tmp_path / "root.pem").write_text(chain[-1])
    (tmp_path / "untrusted.pem").write_text("".join(chain[1:-1]))
    (tmp_path / "leaf.pem").write_text(chain[0])

    result = subprocess.run(
        ["openssl", "verify", "-CAfile", "root.pem", "-untrusted", "untrusted.pem", "leaf.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "leaf.pem: OK" in result.stdout


def test_oidc_token_with_spiffe_subject_is_accepted(served: ServedCa) -> None:
    identity = "spiffe://cluster.local/ns/oidc/sa/batch"
    token = served.oidc.token(identity, now=served.clock.now())
    _, csr = new_workload_csr(identity)
    reviews_before = served.reviews.review_count

    chain = served.agent(token).csr_sign(csr)

    assert _issued_identity(chain, served) == SpiffeId.parse(identity)
    assert served.reviews.review_count == reviews_before  # never sent to the API server


def test_join_token_in_authorization_header_is_accepted_once(served: ServedCa) -> None:
    identity = "spiffe://cluster.local/ns/vm/sa/db"
    created = served.join_token(identity)
    _, csr = new_workload_csr(identity)
    agent = served.agent(f"jt.{created.token}")

    chain = agent.csr_sign(csr)
    assert _issued_identity(chain, served) == SpiffeId.parse(identity)
    with pytest.raises(grpc.RpcError) as second:
        agent.csr_sign(csr)
    assert second.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_join_token_in_dedicated_metadata_key_is_accepted(served: ServedCa) -> None:
    identity = "spiffe://cluster.local/ns/vm/sa/cache"
    created = served.join_token(identity)
    _, csr = new_workload_csr(identity)

    agent = served.agent(extra_metadata=(("citadel-join-token", created.token),))

    assert _issued_identity(agent.csr_sign(csr), served) == SpiffeId.parse(identity)


def test_renewal_over_mtls_with_the_issued_svid(served: ServedCa) -> None:
    token = served.k8s_token("default", "renew")
    identity = "spiffe://cluster.local/ns/default/sa/renew"
    key, csr = new_workload_csr(identity)
    chain = served.agent(token).csr_sign(csr)
    client_chain = "".join(chain[:-1]).encode()
    reviews_before = served.reviews.review_count

    new_key, new_csr = new_workload_csr(identity)
    renewed = served.agent(
        None, mtls=True, client_chain_pem=client_chain, client_key_pem=private_key_to_pkcs8_pem(key)
    ).csr_sign(new_csr)

    assert _issued_identity(renewed, served) == SpiffeId.parse(identity)
    leaf = load_certificates_pem(renewed[0])[0]
    assert public_keys_equal(leaf.public_key(), new_key)  # type: ignore[arg-type]
    assert served.reviews.review_count == reviews_before


def test_trusted_node_agent_obtains_identity_inside_its_prefix(served: ServedCa) -> None:
    token = served.k8s_token("istio-system", "ztunnel")
    target = "spiffe://cluster.local/ns/apps/sa/frontend"
    _, csr = new_workload_csr(target)

    chain = served.agent(token).csr_sign(csr, impersonated_identity=target)

    assert _issued_identity(chain, served) == SpiffeId.parse(target)
    record = served.ca.repository.get_certificate(serial_hex(load_certificates_pem(chain[0])[0]))
    assert record.requester == f"k8s:{NODE_AGENT}"
    assert record.metadata["impersonated"] == "true"


def test_health_check_reports_serving(served: ServedCa) -> None:
    agent = served.agent()
    stub = health_pb2_grpc.HealthStub(agent._channel)
    for service in ("", "istio.v1.auth.IstioCertificateService"):
        answer = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_certificate_service(served: ServedCa) -> None:
    agent = served.agent()
    stub = reflection_pb2_grpc.ServerReflectionStub(agent._channel)
    answers = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for answer in answers for s in answer.list_services_response.service}
    assert "istio.v1.auth.IstioCertificateService" in names
    assert "grpc.health.v1.Health" in names


def test_serving_certificate_is_issued_by_the_ca_for_its_spiffe_id(served: ServedCa) -> None:
    material = served.server.serving.current()
    certs = load_certificates_pem(material.chain_pem)
    identity = verify_svid_chain(
        certs[0],
        certs[1:],
        served.ca.issuer.trust_bundle().x509_authorities,
        at=served.clock.now(),
    )
    assert str(identity) == "spiffe://cluster.local/ns/citadel-system/sa/citadel"
    assert served.ca.repository.get_certificate(material.serial_hex).spiffe_id == str(identity)
    assert certificates_to_pem(certs)  # parses as a chain


def test_every_outcome_is_counted(served: ServedCa) -> None:
    token = served.k8s_token("default", "counted")
    _, csr = new_workload_csr("spiffe://cluster.local/ns/default/sa/counted")
    requests = served.metric("citadel_server_csr_count_total")
    issued = served.metric("citadel_server_success_cert_issuance_count_total")

    served.agent(token).csr_sign(csr)

    assert served.metric("citadel_server_csr_count_total") == requests + 1
    assert served.metric("citadel_server_success_cert_issuance_count_total") == issued + 1
    assert (
        served.metric(
            "citadel_server_rpc_duration_seconds_count", method="CreateCertificate", code="OK"
        )
        >= 1
    )
    assert served.metric("citadel_server_root_cert_expiry_timestamp") > 0


def test_oidc_keys_fetched_from_a_jwks_url(serve: ServeFactory, tmp_path: Path) -> None:
    import json as _json

    from citadel.server.config import OidcAuthConfig
    from tests.fakes.kube_api_server import FakeKubeApiServer, FakeResponse
    from tests.integration.server.tokens import OIDC_AUDIENCE, OidcTestIssuer

    issuer = OidcTestIssuer(tmp_path)
    jwks = _json.loads(issuer.jwks_file.read_text())
    with FakeKubeApiServer() as idp:
        idp.add_handler("GET", "/jwks", lambda request: FakeResponse(body=jwks))
        served = serve(
            oidc=OidcAuthConfig(
                issuer=issuer.issuer, audiences=(OIDC_AUDIENCE,), jwks_url=f"{idp.url}/jwks"
            )
        )
        identity = "spiffe://cluster.local/ns/oidc/sa/url"
        _, csr = new_workload_csr(identity)
        chain = served.agent(issuer.token(identity, now=served.clock.now())).csr_sign(csr)
        assert _issued_identity(chain, served) == SpiffeId.parse(identity)
        assert len(idp.requests_to("GET", "/jwks")) == 1
