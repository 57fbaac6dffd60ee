"""Fixtures of the Workload API tests: two trust domains, a JWT signer, a fake source."""

from __future__ import annotations

import pytest

from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import ManualClock
from citadel.identity.jwt_svid import PrivateKeyJwtSigner
from citadel.identity.keys import KeyType, generate_private_key
from tests.conftest import FIXED_NOW
from tests.fixtures.pki import Pki, make_pki
from tests.unit.node_agent.workload_api.fakes import FakeIdentitySource


@pytest.fixture(scope="module")
def td_pki() -> Pki:
    return make_pki("example.org", now=FIXED_NOW)


@pytest.fixture(scope="module")
def foreign_pki() -> Pki:
    return make_pki("partner.org", now=FIXED_NOW)


@pytest.fixture(scope="module")
def jwt_signer() -> PrivateKeyJwtSigner:
    return PrivateKeyJwtSigner("jwt-key-1", generate_private_key(KeyType.EC_P256))


@pytest.fixture
def bundles(td_pki: Pki, foreign_pki: Pki, jwt_signer: PrivateKeyJwtSigner) -> list[TrustBundle]:
    return [
        TrustBundle(
            td_pki.trust_domain,
            x509_authorities=(td_pki.root,),
            jwt_authorities=(jwt_signer.authority(),),
        ),
        TrustBundle(foreign_pki.trust_domain, x509_authorities=(foreign_pki.root,)),
    ]


@pytest.fixture
def source(
    clock: ManualClock, jwt_signer: PrivateKeyJwtSigner, bundles: list[TrustBundle]
) -> FakeIdentitySource:
    return FakeIdentitySource(clock=clock, signer=jwt_signer, bundles=bundles)
