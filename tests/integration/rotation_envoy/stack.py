"""The rotation mesh: the real CA, two real agents, two real Envoys and continuous traffic.

client app -> client Envoy (outbound) -> mTLS -> server Envoy (inbound) -> app. The client
Envoy opens a new upstream connection for every request (``max_requests_per_connection:
1``), so every request is a fresh mTLS handshake between the two Envoys with whatever
certificates and trust bundle (roots and CRLs) they hold at that moment. Used by the
rotation tests and by ``tests/bench/bench_rotation.py``.
"""

from __future__ import annotations

import http.client
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from citadel.identity.pem import certificate_fingerprint, load_certificates_pem
from tests.integration.node_agent.agent_process import AgentProcess
from tests.integration.node_agent.mesh import (
    App,
    HandshakeFailed,
    agent_config,
    get_via,
    handshake,
)
from tests.peers.citadel_server import CitadelServer, start_citadel_server
from tests.peers.envoy import (
    EnvoyProcess,
    adapt_cluster_endpoint,
    adapt_for_test,
    envoy_binary,
    load_example,
)

__all__ = ["CLIENT_ID", "SERVER_ID", "RequestLoop", "RotationMesh", "rotation_mesh"]

CLIENT_ID = "spiffe://example.org/ns/default/sa/client"
SERVER_ID = "spiffe://example.org/ns/default/sa/server"


@dataclass
class RequestLoop:
    """GET through the client Envoy every ``period`` seconds on a thread, until stopped or
    ``limit`` seconds have passed; every non-200 answer or error is kept."""

    port: int
    period: float = 0.05
    limit: float = 120.0
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        deadline = time.monotonic() + self.limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            began = time.monotonic()
            self.sent += 1
            try:
                status, body = get_via(self.port, timeout=3.0)
            except (OSError, http.client.HTTPException) as exc:
                status, body = 0, repr(exc)
            if status != 200:
                self.failures.append(f"{time.strftime('%H:%M:%S')} {status} {body[:120]}")
            self._stop.wait(max(0.0, self.period - (time.monotonic() - began)))

    def __enter__(self) -> RequestLoop:
        self._thread = threading.Thread(target=self._run, name="request-loop", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)


@dataclass
class RotationMesh:
    base: Path
    ca: CitadelServer
    client_agent: AgentProcess
    server_agent: AgentProcess
    client_envoy: EnvoyProcess
    server_envoy: EnvoyProcess
    app: App
    outbound_port: int
    inbound_port: int

    @property
    def agents(self) -> tuple[AgentProcess, AgentProcess]:
        return self.client_agent, self.server_agent

    @property
    def envoys(self) -> tuple[EnvoyProcess, EnvoyProcess]:
        return self.client_envoy, self.server_envoy

    def ca_roots(self) -> list[x509.Certificate]:
        return load_certificates_pem(self.ca.root_bundle_pem())

    def handshake_as(self, cert_dir: Path, roots: Path) -> str:
        """A new handshake with the server Envoy presenting ``cert_dir``'s certificate
        (TLS 1.2: a refused client certificate fails the handshake itself)."""
        peer = handshake(
            self.inbound_port,
            roots=roots,
            client_cert=(cert_dir / "cert-chain.pem", cert_dir / "key.pem"),
            max_tls12=True,
        )
        return peer.serial_hex

    def refused(self, cert_dir: Path, roots: Path) -> bool:
        try:
            self.handshake_as(cert_dir, roots)
        except HandshakeFailed:
            return True
        return False


def trust_bundle(agent: AgentProcess) -> dict[str, Any]:
    """The agent's ROOTCA as its status endpoint reports it."""
    for secret in agent.status()["secrets"]:
        if secret["name"] == "ROOTCA":
            assert isinstance(secret, dict)
            return secret
    raise AssertionError(f"{agent.name} has no ROOTCA")


def leaf_issuer(agent: AgentProcess) -> str:
    """SHA-256 fingerprint of the intermediate that signed the agent's current leaf."""
    chain = load_certificates_pem((agent.workdir / "out" / "cert-chain.pem").read_bytes())
    return certificate_fingerprint(chain[1])


def envoy_ca_serials(envoy: EnvoyProcess) -> set[str]:
    """Serials (lowercase hex) of every CA certificate Envoy validates peers with."""
    serials: set[str] = set()
    for context in json.loads(envoy.admin_get("/certs")).get("certificates", []):
        for cert in context.get("ca_cert", []):
            serials.add(str(cert.get("serial_number", "")).lower().lstrip("0"))
    return serials


def _client_bootstrap(base: Path, inbound_port: int) -> dict[str, Any]:
    document = adapt_for_test(
        load_example("client-sidecar.yaml"), sds_socket=base / "client" / "sds.sock"
    )
    adapt_cluster_endpoint(document, "server_mtls", inbound_port)
    for cluster in document["static_resources"]["clusters"]:
        if cluster["name"] == "server_mtls":  # one request per connection: every request
            cluster["typed_extension_protocol_options"] = {  # is a new mTLS handshake
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/"
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "common_http_protocol_options": {"max_requests_per_connection": 1},
                    "explicit_http_config": {"http_protocol_options": {}},
                }
            }
    return document


@contextmanager
def rotation_mesh(
    *,
    agent_overrides: dict[str, Any] | None = None,
    ca_config: dict[str, Any] | None = None,
    ttl_seconds: int = 30,
) -> Iterator[RotationMesh]:
    """Start everything (bounded waits), yield, stop everything by PID."""
    envoy_binary()
    base = Path(tempfile.mkdtemp(prefix="rot-", dir="/tmp"))  # short socket paths
    started: list[Any] = []
    try:
        extra: tuple[str, ...] = ()
        if ca_config is not None:
            config_file = base / "citadel.yaml"
            config_file.write_text(json.dumps(ca_config))
            extra = ("--config", str(config_file))
        ca = start_citadel_server(base / "ca", extra_args=extra)
        started.append(ca)
        (base / "roots.pem").write_bytes(ca.root_bundle_pem())
        app = App()
        started.append(app)
        agents = []
        for name, spiffe_id in (("client", CLIENT_ID), ("server", SERVER_ID)):
            config = agent_config(
                base, name, spiffe_id, ca, ca.create_join_token(spiffe_id), ttl_seconds=ttl_seconds
            )
            for key, value in (agent_overrides or {}).items():
                if isinstance(value, dict):
                    config.setdefault(key, {}).update(value)
                else:
                    config[key] = value
            agent = AgentProcess(config, base / name, name=f"{name}-agent")
            started.append(agent)
            agent.start()
            agents.append(agent)
        server_doc = adapt_for_test(
            load_example("server-sidecar.yaml"), sds_socket=base / "server" / "sds.sock"
        )
        adapt_cluster_endpoint(server_doc, "local_app", app.port)
        server_envoy = EnvoyProcess(server_doc, base / "envoy-server", "server-envoy")
        started.append(server_envoy)
        server_envoy.start()
        inbound_port = server_envoy.listener_port("inbound_mtls")
        client_envoy = EnvoyProcess(
            _client_bootstrap(base, inbound_port), base / "envoy-client", "client-envoy"
        )
        started.append(client_envoy)
        client_envoy.start()
        yield RotationMesh(
            base=base,
            ca=ca,
            client_agent=agents[0],
            server_agent=agents[1],
            client_envoy=client_envoy,
            server_envoy=server_envoy,
            app=app,
            outbound_port=client_envoy.listener_port("outbound"),
            inbound_port=inbound_port,
        )
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(base, ignore_errors=True)
