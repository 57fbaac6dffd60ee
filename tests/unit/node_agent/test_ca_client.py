"""The agent's CSR client against the fake CA served over real TLS gRPC on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest

from citadel.identity.clock import Clock, ManualClock, SystemClock
from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.spiffe_id import SpiffeId
from node_agent.ca_client import CaClient, CaEndpoint
from node_agent.credentials import CallAuth, SvidCredential
from node_agent.errors import CaRejectedError, CaUnreachableError
from node_agent.issued_chain import verify_issued_chain
from tests.fakes.fake_ca import FakeCa, FakeCaBehaviour, FakePki, ServedFakeCa
from tests.unit.node_agent.conftest import WORKLOAD

ME = SpiffeId.parse(WORKLOAD)
TOKEN = CallAuth(kind="token_file", metadata=(("authorization", "Bearer good.token"),))


@pytest.fixture
def fake_ca(pki: FakePki, clock: ManualClock) -> FakeCa:
    return FakeCa(pki, clock, FakeCaBehaviour(required_bearer="good.token"))


@pytest.fixture
def served(fake_ca: FakeCa) -> Iterator[ServedFakeCa]:
    server = fake_ca.serve()
    try:
        yield server
    finally:
        server.stop()


def _client(address: str, mtls_address: str | None = None) -> CaClient:
    return CaClient(
        CaEndpoint(address=address, mtls_address=mtls_address, timeout=timedelta(seconds=3))
    )


def test_token_call_returns_a_chain_that_verifies(
    served: ServedFakeCa, fake_ca: FakeCa, pki: FakePki, clock: ManualClock
) -> None:
    key = generate_private_key()
    chain = _client(served.address).create_certificate(
        csr_to_pem(build_csr(key, ME)), ttl=timedelta(hours=2), auth=TOKEN, roots_pem=pki.root_pem
    )
    svid = verify_issued_chain(chain, expected=ME, key=key, roots=[pki.root], now=clock.now())
    assert svid.not_after == clock.now() + timedelta(hours=2)
    assert fake_ca.calls[-1].validity_seconds == 7200
    assert ("authorization", "Bearer good.token") in fake_ca.calls[-1].metadata


def test_current_certificate_is_presented_on_the_mtls_port(pki: FakePki) -> None:
    # TLS checks the client certificate against the wall clock: issue at the real time.
    wall = SystemClock()
    fake_ca = FakeCa(pki, wall, FakeCaBehaviour(required_bearer="good.token"))
    served = fake_ca.serve()
    try:
        _renew_over_mtls(fake_ca, served, pki, wall)
    finally:
        served.stop()


def _renew_over_mtls(fake_ca: FakeCa, served: ServedFakeCa, pki: FakePki, wall: Clock) -> None:
    client = _client(served.address, served.mtls_address)
    key = generate_private_key()
    first = client.create_certificate(
        csr_to_pem(build_csr(key, ME)), ttl=None, auth=TOKEN, roots_pem=pki.root_pem
    )
    svid = verify_issued_chain(first, expected=ME, key=key, roots=[pki.root], now=wall.now())
    mtls = SvidCredential(svid.chain_pem(), private_key_to_pkcs8_pem(key)).call_auth()
    client.create_certificate(
        csr_to_pem(build_csr(generate_private_key(), ME)),
        ttl=None,
        auth=mtls,
        roots_pem=pki.root_pem,
    )
    assert fake_ca.calls[-1].client_certificate is True


def test_ca_refusal_is_reported_with_its_status_code(served: ServedFakeCa, pki: FakePki) -> None:
    bad = CallAuth(kind="token_file", metadata=(("authorization", "Bearer wrong"),))
    with pytest.raises(CaRejectedError) as caught:
        _client(served.address).create_certificate(
            csr_to_pem(build_csr(generate_private_key(), ME)),
            ttl=None,
            auth=bad,
            roots_pem=pki.root_pem,
        )
    assert caught.value.code == "UNAUTHENTICATED"


def test_nothing_listening_is_ca_unreachable(pki: FakePki) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(CaUnreachableError, match="unreachable"):
        _client(f"127.0.0.1:{port}").create_certificate(
            csr_to_pem(build_csr(generate_private_key(), ME)),
            ttl=None,
            auth=TOKEN,
            roots_pem=pki.root_pem,
        )


def test_ca_with_a_certificate_we_do_not_trust_is_unreachable(
    served: ServedFakeCa, clock: ManualClock
) -> None:
    from datetime import UTC, datetime

    from tests.fakes.fake_ca import make_fake_pki

    stranger = make_fake_pki(around=[clock.now(), datetime.now(UTC)])
    with pytest.raises(CaUnreachableError):
        _client(served.address).create_certificate(
            csr_to_pem(build_csr(generate_private_key(), ME)),
            ttl=None,
            auth=TOKEN,
            roots_pem=stranger.root_pem,
        )
