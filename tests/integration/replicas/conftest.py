"""Two ``citadel serve`` replicas on one real PostgreSQL database, sharing one key directory,
with a fake Kubernetes API server answering their TokenReviews."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import KeyType, PrivateKey, generate_private_key
from citadel.identity.spiffe_id import SpiffeId
from tests.fakes.istio_agent_client import IstioAgentClient
from tests.fakes.kube_api_server import FakeKubeApiServer, TokenReviewBook
from tests.integration.replicas.replica_process import (
    TRUST_DOMAIN,
    Replica,
    citadel_cli,
    replica_config,
)
from tests.integration.server.tokens import K8S_ISSUER, kube_token
from tests.peers.postgres import PostgresServer

CA_API_TOKEN = "replica-ca-own-token"
NAMESPACE = "replicas"


def create_database(server: PostgresServer) -> str:
    """A new, empty database on ``server``; returns its URL."""
    import psycopg
    from psycopg import sql

    name = f"citadel_replicas_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.conninfo(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return server.url(name)


def drop_database(server: PostgresServer, url: str) -> None:
    import psycopg
    from psycopg import sql

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server.conninfo(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@dataclass
class KubeApi:
    server: FakeKubeApiServer
    reviews: TokenReviewBook
    token_file: Path

    def token(self, account: str) -> str:
        """A distinct service-account token the API server accepts (audience istio-ca)."""
        now = datetime.now(UTC)
        token = kube_token(NAMESPACE, account, now=now, lifetime=timedelta(hours=1))
        self.reviews.allow(token, f"system:serviceaccount:{NAMESPACE}:{account}")
        return token


def start_kube_api(directory: Path) -> KubeApi:
    server = FakeKubeApiServer(required_token=CA_API_TOKEN).start()
    reviews = server.serve_token_reviews()
    directory.mkdir(parents=True, exist_ok=True)
    token_file = directory / "ca-api-token"
    token_file.write_text(CA_API_TOKEN)
    return KubeApi(server, reviews, token_file)


@dataclass
class Workload:
    """One workload: its service-account token and a few CSRs for its SPIFFE ID."""

    account: str
    token: str
    csrs: list[str]

    @property
    def spiffe_id(self) -> str:
        return f"spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{self.account}"


_KEYS: list[PrivateKey] = []


def workload(kube: KubeApi, account: str, csrs: int = 2) -> Workload:
    """CSRs reuse a few keys (key generation is not what these tests are about)."""
    while len(_KEYS) < 4:
        _KEYS.append(generate_private_key(KeyType.EC_P256))
    identity = SpiffeId.parse(f"spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{account}")
    pems = [csr_to_pem(build_csr(_KEYS[i % len(_KEYS)], identity)) for i in range(csrs)]
    return Workload(account, kube.token(account), pems)


def leaf_of(chain: list[str]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(chain[0].encode())


@dataclass
class ReplicaSet:
    """Replicas on one database and one shared key directory."""

    workdir: Path
    db_url: str
    kube: KubeApi
    replicas: list[Replica] = field(default_factory=list)
    _clients: dict[tuple[str, str], IstioAgentClient] = field(default_factory=dict)
    _root_pem: bytes | None = None

    @property
    def shared_keys(self) -> Path:
        return self.workdir / "shared-keys"

    def add(self, name: str, **config: Any) -> Replica:
        replica = Replica(
            name=name,
            workdir=self.workdir,
            db_url=self.db_url,
            shared_keys=self.shared_keys,
            config=replica_config(
                kube_url=self.kube.server.url,
                kube_token_file=self.kube.token_file,
                kube_issuer=K8S_ISSUER,
                **config,
            ),
        )
        self.replicas.append(replica)
        return replica

    def start_all(self) -> None:
        """Launch every replica at once (they race to initialise the CA), then wait."""
        for replica in self.replicas:
            replica.launch()
        for replica in self.replicas:
            replica.wait_ready()

    def cli(self, *args: str) -> str:
        result = citadel_cli(self.db_url, self.replicas[0].data_dir, *args)
        assert result.returncode == 0, f"citadel {' '.join(args)}: {result.stderr[-2000:]}"
        return result.stdout

    def root_pem(self) -> bytes:
        """The trust bundle (read once; the tests rotate intermediates, never the root)."""
        if self._root_pem is None:
            self._root_pem = self.cli("bundle", "show").encode()
        return self._root_pem

    def client(self, replica: Replica, token: str) -> IstioAgentClient:
        key = (replica.target, token)
        client = self._clients.get(key)
        if client is None:
            client = IstioAgentClient(replica.target, self.root_pem(), token=token, timeout=15)
            self._clients[key] = client
        return client

    def sign(self, replica: Replica, work: Workload, index: int = 0) -> list[str]:
        return self.client(replica, work.token).csr_sign(work.csrs[index % len(work.csrs)])

    def sign_code(self, replica: Replica, work: Workload) -> grpc.StatusCode:
        try:
            self.sign(replica, work)
        except grpc.RpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    def leaders(self) -> list[str]:
        return [r.name for r in self.replicas if r.running and r.is_leader()]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        for replica in self.replicas:
            replica.stop()


@pytest.fixture(scope="module")
def kube_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeApi]:
    api = start_kube_api(tmp_path_factory.mktemp("kube"))
    try:
        yield api
    finally:
        api.server.stop()


@pytest.fixture(scope="module")
def replica_pair(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer, kube_api: KubeApi
) -> Iterator[ReplicaSet]:
    url = create_database(postgres_server)
    pair = ReplicaSet(workdir=tmp_path_factory.mktemp("pair"), db_url=url, kube=kube_api)
    try:
        pair.add("a")
        pair.add("b")
        pair.start_all()
        yield pair
    finally:
        pair.close()
        drop_database(postgres_server, url)
