"""The CA goes down while Envoy-to-Envoy traffic flows; it comes back later.

client app -> client Envoy -> mTLS -> server Envoy -> app, each Envoy fed over SDS by its
own ``citadel-agent``, both agents fed by the real ``citadel serve``. Certificates live
10 s (renewed about every 4 s), so the CA-up phase spans a few lifetimes. Then the CA is
killed (SIGKILL). While the cached certificates are valid, the agents keep serving them
and no request fails; they report the outage at once (``citadel_agent_ca_unreachable``)
and stay ready. When the certificates expire, readiness turns 503 naming the expiry and the
log says the certificate EXPIRED. When the CA returns on its ports, the agents renew (they
re-bootstrap with their long-lived bootstrap certificate) and traffic flows again.
"""

from __future__ import annotations

import http.client
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.node_agent.agent_process import AgentProcess
from tests.integration.node_agent.mesh import App, agent_config, get_via
from tests.peers.citadel_server import CitadelServer, start_citadel_server
from tests.peers.envoy import (
    EnvoyProcess,
    adapt_cluster_endpoint,
    adapt_for_test,
    envoy_binary,
    load_example,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

CLIENT_ID = "spiffe://example.org/ns/default/sa/client"
SERVER_ID = "spiffe://example.org/ns/default/sa/server"
TTL_SECONDS = 10
# Renew 6 s before expiry: the lifetime is TTL + the CA's 120 s of NotBefore backdating.
RATIO = 6 / (TTL_SECONDS + 120)
UP_PHASE_S = 12.0


@dataclass
class Traffic:
    """Requests through the mesh every 50 ms: (wall time, HTTP status or 0)."""

    port: int
    results: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                status, _ = get_via(self.port, timeout=2.0)
            except (OSError, http.client.HTTPException):
                status = 0
            self.results.append((time.time(), status))
            self._stop.wait(0.05)

    def failures(self, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, int]]:
        return [(t, s) for t, s in self.results if since <= t < until and s != 200]

    def ok_after(self, since: float) -> bool:
        return any(s == 200 for t, s in self.results if t >= since)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


@dataclass
class Mesh:
    ca: CitadelServer
    agents: list[AgentProcess]
    outbound_port: int


def _agent(base: Path, ca: CitadelServer, name: str, spiffe_id: str) -> AgentProcess:
    boot = ca.mint(spiffe_id, base / f"{name}-boot", ttl="1h")
    config = agent_config(
        base,
        name,
        spiffe_id,
        ca,
        "not-used",
        ttl_seconds=TTL_SECONDS,
        rotation={"ratio": RATIO, "jitter": 0.005},
        backoff={"initial_seconds": 0.5, "max_seconds": 1},
    )
    config["ca"]["credential"] = {
        "type": "certificate",
        "cert_file": str(boot / "cert-chain.pem"),
        "key_file": str(boot / "key.pem"),
    }
    return AgentProcess(config, base / name, name=f"{name}-agent")


@pytest.fixture
def mesh() -> Iterator[Mesh]:
    envoy_binary()
    base = Path(tempfile.mkdtemp(prefix="res-", dir="/tmp"))  # socket paths stay short
    started: list[Any] = []
    try:
        ca = start_citadel_server(base / "ca")
        started.append(ca)
        (base / "roots.pem").write_bytes(ca.root_bundle_pem())
        app = App()
        started.append(app)
        agents = [_agent(base, ca, "client", CLIENT_ID), _agent(base, ca, "server", SERVER_ID)]
        for agent in agents:
            started.append(agent)
            agent.start()
        server_doc = adapt_for_test(
            load_example("server-sidecar.yaml"), sds_socket=base / "server" / "sds.sock"
        )
        adapt_cluster_endpoint(server_doc, "local_app", app.port)
        server_envoy = EnvoyProcess(server_doc, base / "envoy-server", "server-envoy")
        started.append(server_envoy)
        server_envoy.start()
        client_doc = adapt_for_test(
            load_example("client-sidecar.yaml"), sds_socket=base / "client" / "sds.sock"
        )
        adapt_cluster_endpoint(
            client_doc, "server_mtls", server_envoy.listener_port("inbound_mtls")
        )
        client_envoy = EnvoyProcess(client_doc, base / "envoy-client", "client-envoy")
        started.append(client_envoy)
        client_envoy.start()
        yield Mesh(ca, agents, client_envoy.listener_port("outbound"))
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(base, ignore_errors=True)


def _expiry(agent: AgentProcess) -> float:
    for secret in agent.status()["secrets"]:
        if secret["name"] == "default":
            return datetime.fromisoformat(secret["not_after"]).timestamp()
    raise AssertionError(f"{agent.name} has no certificate")


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_agents_serve_cached_certificates_through_a_ca_outage_then_report_it(
    mesh: Mesh,
) -> None:
    _wait(lambda: get_via(mesh.outbound_port)[0] == 200, 20, "the mesh to carry traffic")
    traffic = Traffic(mesh.outbound_port)
    try:
        serials = {a.name: {a.serial()} for a in mesh.agents}
        up_until = time.monotonic() + UP_PHASE_S
        while time.monotonic() < up_until:  # CA up: a few certificate lifetimes
            for agent in mesh.agents:
                serials[agent.name].add(agent.serial())
            time.sleep(0.2)
        rotations = {name: len(seen) - 1 for name, seen in serials.items()}
        assert min(rotations.values()) >= 2, rotations
        assert traffic.failures() == [], "a request failed while the CA was up"

        assert mesh.ca.process is not None
        mesh.ca.process.kill()  # SIGKILL: the CA is gone, no goodbye
        mesh.ca.process.wait(10)
        mesh.ca.stop()
        down_at = time.time()
        expiry = min(_expiry(agent) for agent in mesh.agents)
        assert expiry > down_at, "the certificates expired before the outage even began"

        for agent in mesh.agents:  # the outage is reported while the cache still serves
            _wait(lambda a=agent: a.metric("citadel_agent_ca_unreachable") == 1, 10, "report")
            assert agent.get("/ready")[0] == 200, agent.get("/ready")
        assert time.time() < expiry, "the outage was reported only after expiry"

        _wait(lambda: time.time() > expiry + 2.0, TTL_SECONDS + 5, "the certificates to expire")
        for agent in mesh.agents:
            _wait(lambda a=agent: a.get("/ready")[0] == 503, 5, f"{agent.name} not ready")
            _, reason = agent.get("/ready")
            assert "not usable" in reason and "expired" in reason.lower(), reason
            assert "EXPIRED" in agent.log_text()
            assert agent.metric('citadel_agent_cert_expiry_seconds{resource_name="default"}') < 0
        failed_while_valid = traffic.failures(until=expiry - 0.5)
        assert failed_while_valid == [], "a request failed while a valid certificate existed"
        served_during_outage = sum(1 for t, s in traffic.results if down_at <= t < expiry)

        mesh.ca.start()  # back on the same ports and data
        back_at = time.time()
        for agent in mesh.agents:
            _wait(lambda a=agent: a.get("/ready")[0] == 200, 20, f"{agent.name} to recover")
        _wait(lambda: traffic.ok_after(time.time() - 0.2), 20, "traffic after recovery")
        recovered_in = time.time() - back_at
    finally:
        traffic.stop()
    after_expiry = traffic.failures(since=expiry)
    print(
        f"CA outage: {len(traffic.results)} requests, rotations {rotations}; CA down "
        f"{expiry - down_at:.1f}s before the first expiry, {served_during_outage} requests "
        f"served from cached certificates meanwhile, 0 failed; {len(after_expiry)} failed after "
        f"expiry; agents and traffic back {recovered_in:.1f}s after the CA restarted"
    )
