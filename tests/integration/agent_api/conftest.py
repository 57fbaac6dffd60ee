"""A real CA (SQLite in a temporary directory, real key manager, real issuer) serving the
agent API over real gRPC/TLS on 127.0.0.1:0, and agents with real X509-SVIDs from it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from citadel._proto import citadel_agent_pb2_grpc
from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, open_ca
from citadel.ca.issuer import SignParams
from citadel.identity.clock import ManualClock
from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import parse_selectors
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.server.ca_server import CaServer
from citadel.server.config import ServerConfig
from node_agent.agent_api_channel import AgentApiEndpoint, MtlsMaterial
from node_agent.entries.client import AgentApiClient

TRUST_DOMAIN = TrustDomain("cluster.local")
AGENT = SpiffeId.parse("spiffe://cluster.local/citadel/agent/node-1")
OTHER_AGENT = SpiffeId.parse("spiffe://cluster.local/citadel/agent/node-2")
WORKLOAD = SpiffeId.parse("spiffe://cluster.local/ns/shop/sa/web")  # not an agent
PASSPHRASE = b"agent api test"


@dataclass
class Identity:
    """An X509-SVID issued by the CA under test, with its key (for mTLS)."""

    spiffe_id: SpiffeId
    material: MtlsMaterial
    serial_hex: str


@dataclass
class AgentCa:
    ca: CaContext
    server: CaServer
    clock: ManualClock
    data_dir: Path
    port: int
    mtls_port: int
    clients: list[AgentApiClient] = field(default_factory=list)
    channels: list[grpc.Channel] = field(default_factory=list)

    @property
    def roots_pem(self) -> bytes:
        return self.ca.issuer.trust_bundle().to_pem().encode("ascii")

    def identity(self, spiffe_id: SpiffeId, *, ttl: timedelta = timedelta(hours=1)) -> Identity:
        key = generate_private_key(KeyType.EC_P256)
        chain = self.ca.issuer.issue(
            key.public_key(), SignParams(spiffe_id=spiffe_id, ttl=ttl, requester="test:fixture")
        )
        return Identity(
            spiffe_id=spiffe_id,
            material=MtlsMaterial(
                chain_pem=chain.chain_pem().encode("ascii"),
                key_pem=private_key_to_pkcs8_pem(key),
                roots_pem=self.roots_pem,
            ),
            serial_hex=chain.serial_hex,
        )

    def client(self, who: Identity | SpiffeId = AGENT) -> AgentApiClient:
        identity = who if isinstance(who, Identity) else self.identity(who)
        client = AgentApiClient(
            AgentApiEndpoint(address=f"127.0.0.1:{self.mtls_port}", server_name="localhost"),
            lambda: identity.material,
        )
        self.clients.append(client)
        return client

    def raw_stub(self, who: Identity | None, *, mtls: bool = True) -> Any:
        """A bare stub: with ``who``'s certificate, or with no client certificate."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=self.roots_pem,
            private_key=who.material.key_pem if who else None,
            certificate_chain=who.material.chain_pem if who else None,
        )
        channel = grpc.secure_channel(
            f"127.0.0.1:{self.mtls_port if mtls else self.port}",
            credentials,
            options=[("grpc.ssl_target_name_override", "localhost")],
        )
        self.channels.append(channel)
        return citadel_agent_pb2_grpc.AgentServiceStub(channel)

    def add_entry(
        self,
        entry_id: str,
        path: str,
        *selectors: str,
        parent: SpiffeId = AGENT,
        **fields: Any,
    ) -> RegistrationEntry:
        return self.ca.repository.create_entry(
            RegistrationEntry(
                entry_id=entry_id,
                spiffe_id=TRUST_DOMAIN.spiffe_id(path),
                parent_id=parent,
                selectors=parse_selectors(selectors or ("unix:uid:1000",)),
                **fields,
            ),
            self.clock.now(),
        )

    def issuance_count(self) -> int:
        count, after = 0, 0
        while True:
            page = self.ca.repository.list_audit(after_seq=after, limit=10_000)
            if not page:
                return count
            count += sum(1 for event in page if event.action == "issue")
            after = page[-1].seq

    def close(self) -> None:
        for client in self.clients:
            client.close()
        for channel in self.channels:
            channel.close()
        self.server.stop(timedelta(seconds=1))
        self.ca.close()


def start_agent_ca(directory: Path, clock: ManualClock | None = None) -> AgentCa:
    clock = clock if clock is not None else ManualClock(datetime.now(UTC))
    ca = open_ca(
        CaConfig(data_dir=directory / "ca", trust_domain=TRUST_DOMAIN, key_passphrase=PASSPHRASE),
        clock,
        init_if_missing=True,
    )
    config = ServerConfig(
        listen="127.0.0.1:0",
        mtls_listen="127.0.0.1:0",
        metrics_listen=None,
        workers=1,
        threads=8,
        global_limit=None,
        identity_limit=None,
    )
    try:
        # Maintenance would re-issue the serving certificate at the manual clock's time,
        # which TLS (on the wall clock) might see as not yet valid: keep it out of the way.
        server = CaServer(ca=ca, config=config, maintenance_interval=timedelta(hours=1))
        ports = server.start()
    except BaseException:
        ca.close()
        raise
    assert ports.mtls_port is not None
    return AgentCa(ca, server, clock, directory / "ca", ports.port, ports.mtls_port)


@pytest.fixture
def agent_ca(tmp_path: Path) -> Iterator[AgentCa]:
    served = start_agent_ca(tmp_path)
    try:
        yield served
    finally:
        served.close()
