"""GetBundle as node agents poll it (real gRPC/TLS, real CA with its lifecycle attached): any
workload of the trust domain may read it over mTLS, a current ``known_state`` gets a tiny
``unchanged`` answer, acknowledgements are counted, and revocations come from the
lifecycle's index for both the agent API and the CSR API's mTLS renewal."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from citadel._proto import citadel_agent_pb2 as pb
from citadel._proto import istio_ca_pb2, istio_ca_pb2_grpc
from citadel.ca.lifecycle import CaLifecycle, LifecycleOptions, start_ca_lifecycle
from citadel.ca.rotation.acks import bundle_version
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.slots import Slot
from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import KeyType, generate_private_key
from tests.integration.agent_api.conftest import WORKLOAD, AgentCa, Identity

pytestmark = pytest.mark.integration


@pytest.fixture
def lifecycle(agent_ca: AgentCa, tmp_path: Path) -> Iterator[CaLifecycle]:
    started = start_ca_lifecycle(
        agent_ca.ca,
        LifecycleOptions(
            rotation=RotationPolicy(automatic=False, propagation_delay=timedelta(0)),
            watch_interval=timedelta(hours=1),  # ticks are driven by the tests
            ack_snapshot=tmp_path / "acks.json",
        ),
    )
    agent_ca.server.attach_lifecycle(started)
    try:
        yield started
    finally:
        started.close()


def _bundle(agent_ca: AgentCa, who: Identity, **fields: str) -> Any:
    return agent_ca.raw_stub(who).GetBundle(pb.GetBundleRequest(**fields), timeout=10)


def test_a_workload_of_the_trust_domain_may_read_the_bundle_and_its_crls(
    agent_ca: AgentCa, lifecycle: CaLifecycle
) -> None:
    answer = _bundle(agent_ca, agent_ca.identity(WORKLOAD))
    roots = agent_ca.ca.issuer.trust_bundle().x509_authorities
    assert answer.trust_domain == "cluster.local"
    assert answer.bundle_version == bundle_version(roots)
    assert list(answer.crls) == lifecycle.current_crls()
    issuers = {x509.load_der_x509_crl(der).issuer for der in answer.crls}
    assert {root.subject for root in roots} <= issuers  # a CRL for every root
    assert answer.state and not answer.unchanged


def test_a_current_known_state_gets_an_empty_unchanged_answer(
    agent_ca: AgentCa, lifecycle: CaLifecycle
) -> None:
    who = agent_ca.identity(WORKLOAD)
    first = _bundle(agent_ca, who)
    again = _bundle(agent_ca, who, known_state=first.state)
    assert again.unchanged
    assert (again.spiffe_bundle_json, list(again.crls), again.state) == ("", [], "")


def test_a_revocation_or_a_prepared_root_changes_the_state(
    agent_ca: AgentCa, lifecycle: CaLifecycle
) -> None:
    who = agent_ca.identity(WORKLOAD)
    first = _bundle(agent_ca, who)
    victim = agent_ca.identity(WORKLOAD)
    agent_ca.ca.repository.revoke_certificate(
        victim.serial_hex, "keyCompromise", agent_ca.clock.now()
    )
    lifecycle.tick()
    after_revoke = _bundle(agent_ca, who, known_state=first.state)
    assert not after_revoke.unchanged
    assert after_revoke.bundle_version == first.bundle_version  # same roots, new CRLs
    assert any(
        x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(
            int(victim.serial_hex, 16)
        )
        for der in after_revoke.crls
    )
    lifecycle.rotation.prepare(Slot.ROOT)
    lifecycle.tick()
    after_prepare = _bundle(agent_ca, who, known_state=after_revoke.state)
    assert after_prepare.bundle_version != first.bundle_version  # the new root joined


def test_acknowledged_bundle_versions_are_counted_per_caller(
    agent_ca: AgentCa, lifecycle: CaLifecycle
) -> None:
    version = lifecycle.bundle_version()
    for _ in range(2):
        _bundle(agent_ca, agent_ca.identity(WORKLOAD), acknowledged_bundle_version=version)
    snapshot = lifecycle.acks.snapshot()
    assert snapshot is not None
    assert dict(snapshot.versions) == {version: 1}  # one caller identity, counted once


@pytest.mark.parametrize(
    "fields",
    [
        {"acknowledged_bundle_version": "NOT-HEX"},
        {"acknowledged_bundle_version": "a" * 65},
        {"known_state": "\u00e9t\u00e9"},
    ],
    ids=["ack-not-hex", "ack-too-long", "state-not-hex"],
)
def test_malformed_versions_are_invalid_arguments(
    agent_ca: AgentCa, lifecycle: CaLifecycle, fields: dict[str, str]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _bundle(agent_ca, agent_ca.identity(WORKLOAD), **fields)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    assert lifecycle.acks.snapshot() is None


def test_a_certificate_revoked_in_the_lifecycle_index_can_neither_poll_nor_renew(
    agent_ca: AgentCa, lifecycle: CaLifecycle
) -> None:
    who = agent_ca.identity(WORKLOAD)
    assert _bundle(agent_ca, who).trust_domain == "cluster.local"
    agent_ca.ca.repository.revoke_certificate(who.serial_hex, "keyCompromise", agent_ca.clock.now())
    lifecycle.revocations.refresh()  # what the lifecycle loop does every watch interval
    assert lifecycle.is_certificate_revoked(
        x509.load_pem_x509_certificates(who.material.chain_pem)[0]
    )
    with pytest.raises(grpc.RpcError) as info:
        _bundle(agent_ca, who)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    key = generate_private_key(KeyType.EC_P256)
    csr = istio_ca_pb2.IstioCertificateRequest(csr=csr_to_pem(build_csr(key, WORKLOAD)))
    agent_ca.raw_stub(who)
    stub = istio_ca_pb2_grpc.IstioCertificateServiceStub(agent_ca.channels[-1])  # its mTLS
    with pytest.raises(grpc.RpcError) as renewal:
        stub.CreateCertificate(csr, timeout=10)
    assert renewal.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_the_serving_certificate_moves_to_a_newly_activated_root_at_once(
    agent_ca: AgentCa, lifecycle: CaLifecycle
) -> None:
    before = agent_ca.server.serving.current()
    lifecycle.rotation.prepare(Slot.ROOT)
    lifecycle.rotation.activate(Slot.ROOT, force=True)
    lifecycle.tick()  # the authority watch reloads the issuer, then renews the serving cert
    after = agent_ca.server.serving.current()
    assert after.version > before.version
    signer = x509.load_pem_x509_certificates(after.chain_pem)[1]
    assert signer == agent_ca.ca.issuer.signer.cert
    new_root = lifecycle.rotation.slots().root
    assert (
        signer.issuer.rfc4514_string()
        == x509.load_pem_x509_certificate(
            new_root.certificate_pem.encode("ascii")
        ).subject.rfc4514_string()
    )
    lifecycle.rotation.retire(Slot.ROOT, force=True)
    lifecycle.tick()
    answer = _bundle(agent_ca, agent_ca.identity(WORKLOAD))  # handshake on the new root only
    assert answer.bundle_version == bundle_version(
        agent_ca.ca.issuer.trust_bundle().x509_authorities
    )
