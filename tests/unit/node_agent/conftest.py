"""Fixtures shared by the node-agent unit tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import SpiffeId
from node_agent.metrics import AgentMetrics
from node_agent.secret_validation import load_tls_secret, load_trust_bundle_secret
from node_agent.secrets import TlsCertificateSecret, TrustBundleSecret
from tests.conftest import FIXED_NOW
from tests.fakes.fake_ca import FakePki, make_fake_pki

WORKLOAD = "spiffe://example.org/ns/default/sa/web"


@pytest.fixture(scope="session")
def pki() -> FakePki:
    return make_fake_pki(around=[FIXED_NOW, datetime.now(UTC)])


@pytest.fixture
def metrics() -> AgentMetrics:
    return AgentMetrics()


MakeTls = Callable[..., TlsCertificateSecret]


@pytest.fixture
def make_tls(pki: FakePki, clock: ManualClock) -> MakeTls:
    """Build a valid TLS secret (a fresh key and leaf) named ``name``."""

    def make(
        name: str = "default",
        *,
        spiffe_id: str = WORKLOAD,
        lifetime: timedelta = timedelta(hours=1),
        not_before: datetime | None = None,
    ) -> TlsCertificateSecret:
        start = not_before if not_before is not None else clock.now() - timedelta(minutes=2)
        chain, key, _ = pki.leaf_files(
            SpiffeId.parse(spiffe_id), not_before=start, not_after=start + lifetime
        )
        return load_tls_secret(name, chain, key)

    return make


@pytest.fixture
def root_secret(pki: FakePki) -> TrustBundleSecret:
    return load_trust_bundle_secret("ROOTCA", pki.root_pem)
