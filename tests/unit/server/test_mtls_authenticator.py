from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509

from citadel.identity.clock import ManualClock
from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.server.authn.mtls import MtlsAuthenticator
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError
from tests.unit.server.pki import ThrowawayPki, make_pki

WEB = "spiffe://example.org/ns/default/sa/web"


@pytest.fixture
def pki(clock: ManualClock) -> ThrowawayPki:
    return make_pki("example.org", now=clock.now())


def _authenticator(
    pki: ThrowawayPki, clock: ManualClock, revoked: set[int] | None = None
) -> MtlsAuthenticator:
    return MtlsAuthenticator(
        roots=lambda: [pki.root],
        trust_domain=TrustDomain("example.org"),
        clock=clock,
        is_revoked=(lambda cert: cert.serial_number in (revoked or set())),
    )


def _call(leaf: bytes, *chain: bytes) -> CallContext:
    return CallContext(peer_certificate_pem=leaf, peer_chain_pem=chain)


def test_verified_chain_proves_its_single_uri_san(pki: ThrowawayPki, clock: ManualClock) -> None:
    leaf, intermediate = pki.leaf_pem(WEB, now=clock.now())
    caller = _authenticator(pki, clock).authenticate(_call(leaf, intermediate))
    assert caller is not None
    assert caller.identity == SpiffeId.parse(WEB)
    assert caller.kind == "mtls"
    assert caller.detail.startswith("serial=")


def test_no_client_certificate_is_not_this_authenticators_business(
    pki: ThrowawayPki, clock: ManualClock
) -> None:
    assert _authenticator(pki, clock).authenticate(CallContext()) is None


def test_chain_from_another_ca_is_rejected(pki: ThrowawayPki, clock: ManualClock) -> None:
    impostor = make_pki("example.org", now=clock.now())
    leaf, intermediate = impostor.leaf_pem(WEB, now=clock.now())
    with pytest.raises(CredentialRejectedError, match="chain does not verify"):
        _authenticator(pki, clock).authenticate(_call(leaf, intermediate))


def test_chain_from_another_trust_domain_is_rejected(pki: ThrowawayPki, clock: ManualClock) -> None:
    leaf, intermediate = pki.leaf_pem("spiffe://other.org/ns/default/sa/web", now=clock.now())
    with pytest.raises(CredentialRejectedError, match="trust domain"):
        _authenticator(pki, clock).authenticate(_call(leaf, intermediate))


def test_certificate_expired_at_the_injected_time_is_rejected(
    pki: ThrowawayPki, clock: ManualClock
) -> None:
    leaf, intermediate = pki.leaf_pem(WEB, now=clock.now())
    clock.advance(timedelta(hours=2))
    with pytest.raises(CredentialRejectedError):
        _authenticator(pki, clock).authenticate(_call(leaf, intermediate))


def test_revoked_certificate_is_rejected(pki: ThrowawayPki, clock: ManualClock) -> None:
    leaf, intermediate = pki.leaf_pem(WEB, now=clock.now())
    serial = x509.load_pem_x509_certificate(leaf).serial_number
    with pytest.raises(CredentialRejectedError, match="revoked"):
        _authenticator(pki, clock, revoked={serial}).authenticate(_call(leaf, intermediate))


def test_missing_intermediate_is_rejected(pki: ThrowawayPki, clock: ManualClock) -> None:
    leaf, _ = pki.leaf_pem(WEB, now=clock.now())
    with pytest.raises(CredentialRejectedError):
        _authenticator(pki, clock).authenticate(_call(leaf))


def test_garbage_certificate_is_rejected(pki: ThrowawayPki, clock: ManualClock) -> None:
    with pytest.raises(CredentialRejectedError):
        _authenticator(pki, clock).authenticate(_call(b"-----BEGIN CERTIFICATE-----\nAAAA\n"))


def test_ca_certificate_as_client_certificate_is_rejected(
    pki: ThrowawayPki, clock: ManualClock
) -> None:
    intermediate = certificates_to_pem([pki.intermediate]).encode()
    with pytest.raises(CredentialRejectedError, match="not an X509-SVID"):
        _authenticator(pki, clock).authenticate(_call(intermediate))
