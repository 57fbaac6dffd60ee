"""A real CA (SQLite in a temporary directory) served over real gRPC/TLS on 127.0.0.1:0,
with a fake Kubernetes API server for TokenReviews and a test OIDC issuer."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, open_ca
from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.k8s.client import KubeClientSettings
from citadel.server.ca_server import CaServer
from citadel.server.config import KubernetesAuthConfig, OidcAuthConfig, ServerConfig
from citadel.server.grpc_server import BoundPorts
from citadel.server.join_tokens import CreatedJoinToken, create_join_token
from tests.fakes.istio_agent_client import IstioAgentClient
from tests.fakes.kube_api_server import FakeKubeApiServer, TokenReviewBook
from tests.integration.server.tokens import (
    K8S_ISSUER,
    OIDC_AUDIENCE,
    OidcTestIssuer,
    kube_token,
)

TRUST_DOMAIN = TrustDomain("cluster.local")
NODE_AGENT = "spiffe://cluster.local/ns/istio-system/sa/ztunnel"
NODE_AGENT_PREFIX = "spiffe://cluster.local/ns/apps"
CA_API_TOKEN = "citadel-own-sa-token"


@dataclass
class ServedCa:
    """A running CA server and everything a test needs to talk to it and inspect it."""

    ca: CaContext
    server: CaServer
    ports: BoundPorts
    clock: ManualClock
    kube: FakeKubeApiServer
    reviews: TokenReviewBook
    oidc: OidcTestIssuer
    clients: list[IstioAgentClient] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ports.port}"

    @property
    def mtls_target(self) -> str:
        assert self.ports.mtls_port is not None
        return f"127.0.0.1:{self.ports.mtls_port}"

    @property
    def root_pem(self) -> bytes:
        return self.ca.issuer.trust_bundle().to_pem().encode("ascii")

    def agent(
        self, token: str | None = None, *, mtls: bool = False, **kwargs: Any
    ) -> IstioAgentClient:
        client = IstioAgentClient(
            self.mtls_target if mtls else self.target, self.root_pem, token=token, **kwargs
        )
        self.clients.append(client)
        return client

    def k8s_token(
        self, namespace: str, account: str, *, lifetime: timedelta = timedelta(hours=1)
    ) -> str:
        token = kube_token(namespace, account, now=self.clock.now(), lifetime=lifetime)
        self.reviews.allow(token, f"system:serviceaccount:{namespace}:{account}")
        return token

    def join_token(
        self, spiffe_id: str, ttl: timedelta = timedelta(minutes=10)
    ) -> CreatedJoinToken:
        return create_join_token(
            self.ca.repository, spiffe_id=SpiffeId.parse(spiffe_id), ttl=ttl, clock=self.clock
        )

    def audit_count(self) -> int:
        count, after = 0, 0
        while True:
            page = self.ca.repository.list_audit(after_seq=after, limit=10_000)
            if not page:
                return count
            count += len(page)
            after = page[-1].seq

    def metric(self, name: str, **labels: str) -> float:
        value = self.server.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def rejections(self, kind: str) -> float:
        return self.metric("citadel_server_csr_sign_err_count_total", error=kind)

    def close(self) -> None:
        for client in self.clients:
            client.close()
        self.server.stop(timedelta(seconds=1))
        self.ca.close()
        self.kube.stop()


def default_config(kube: FakeKubeApiServer, oidc: OidcTestIssuer) -> ServerConfig:
    return ServerConfig(
        listen="127.0.0.1:0",
        mtls_listen="127.0.0.1:0",
        metrics_listen=None,
        workers=1,
        threads=8,
        kubernetes=KubernetesAuthConfig(
            api=KubeClientSettings(host=kube.url, token=CA_API_TOKEN),
            issuers=(K8S_ISSUER,),
            cluster_id="Kubernetes",
        ),
        oidc=OidcAuthConfig(
            issuer=oidc.issuer, audiences=(OIDC_AUDIENCE,), jwks_file=oidc.jwks_file
        ),
        node_agents={NODE_AGENT: (NODE_AGENT_PREFIX,)},
        global_limit=None,
        identity_limit=None,
    )


ServeFactory = Callable[..., ServedCa]


def _serve(
    directory: Path, *, maintenance_interval: timedelta | None = None, **overrides: Any
) -> ServedCa:
    directory.mkdir(parents=True, exist_ok=True)
    clock = ManualClock(datetime.now(UTC))
    kube = FakeKubeApiServer(required_token=CA_API_TOKEN).start()
    reviews = kube.serve_token_reviews()
    oidc = OidcTestIssuer(directory)
    ca = open_ca(
        CaConfig(data_dir=directory / "ca", trust_domain=TRUST_DOMAIN, key_passphrase=b"test"),
        clock,
        init_if_missing=True,
    )
    config = replace(default_config(kube, oidc), **overrides)
    server = CaServer(ca=ca, config=config, maintenance_interval=maintenance_interval)
    try:
        ports = server.start()
    except BaseException:
        ca.close()
        kube.stop()
        raise
    return ServedCa(ca, server, ports, clock, kube, reviews, oidc)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """Start a CA server with config overrides; stopped at the end of the test."""
    started: list[ServedCa] = []

    def factory(*, maintenance_interval: timedelta | None = None, **overrides: Any) -> ServedCa:
        served = _serve(
            tmp_path / f"ca{len(started)}", maintenance_interval=maintenance_interval, **overrides
        )
        started.append(served)
        return served

    yield factory
    for served in started:
        served.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCa]:
    """One CA server shared by a module's tests (each test checks its own deltas)."""
    served = _serve(tmp_path_factory.mktemp("served"))
    yield served
    served.close()
