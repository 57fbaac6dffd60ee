"""Two real Envoys get their mTLS certificates from two real agents, fed by the real CA.

client app -> client Envoy (SotW SDS) -> mTLS -> server Envoy (Delta SDS) -> app. The CA is
``citadel serve`` in a temporary directory; each agent bootstraps with a join token from
``citadel token create`` and renews over mTLS. Certificates live 30 s (plus the CA's 2 min
backdating) and are renewed at ratio 0.12, i.e. about every 12 s, so rotation runs all
through the module. Every process is stopped by PID in teardown.
"""

from __future__ import annotations

import copy
import http.client
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.node_agent.agent_process import AgentProcess
from tests.integration.node_agent.mesh import (
    App,
    HandshakeFailed,
    agent_config,
    get_via,
    handshake,
    wait_for,
)
from tests.peers.citadel_server import CitadelServer, start_citadel_server
from tests.peers.envoy import (
    EnvoyProcess,
    adapt_cluster_endpoint,
    adapt_for_test,
    envoy_binary,
    load_example,
    set_sds_api_type,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

CLIENT_ID = "spiffe://example.org/ns/default/sa/client"
SERVER_ID = "spiffe://example.org/ns/default/sa/server"
INTRUDER_ID = "spiffe://example.org/ns/default/sa/intruder"
FILES_ID = "spiffe://example.org/ns/default/sa/mounted"


@dataclass
class Mesh:
    base: Path
    ca: CitadelServer
    roots: Path
    client_agent: AgentProcess
    server_agent: AgentProcess
    client_envoy: EnvoyProcess
    server_envoy: EnvoyProcess
    app: App
    files: Path
    outbound_port: int
    inbound_port: int
    files_port: int

    @property
    def client_cert(self) -> tuple[Path, Path]:
        out = self.base / "client" / "out"
        return out / "cert-chain.pem", out / "key.pem"

    def inbound_peer(self) -> Any:
        """A handshake as the client workload (retried: its files rotate every ~12 s)."""
        for _ in range(4):
            try:
                return handshake(self.inbound_port, roots=self.roots, client_cert=self.client_cert)
            except HandshakeFailed:
                time.sleep(0.05)
        return handshake(self.inbound_port, roots=self.roots, client_cert=self.client_cert)


def _files_listener(inbound: dict[str, Any], files: Path) -> dict[str, Any]:
    """A copy of the inbound listener whose secrets are file-mounted (no client cert)."""
    listener = copy.deepcopy(inbound)
    listener["name"] = "files_tls"
    context = listener["filter_chains"][0]["transport_socket"]["typed_config"]
    context["require_client_certificate"] = False
    common = context["common_tls_context"]
    common["tls_certificate_sds_secret_configs"][0]["name"] = (
        f"file-cert:{files / 'cert.pem'}~{files / 'key.pem'}"
    )
    validation = common["combined_validation_context"]
    validation["validation_context_sds_secret_config"]["name"] = f"file-root:{files / 'root.pem'}"
    return listener


def _install(minted: Path, files: Path) -> None:
    """Replace the mounted files the way a volume update does: write aside, then rename."""
    for source, target in (("cert-chain.pem", "cert.pem"), ("key.pem", "key.pem")):
        staging = files / f".{target}.new"
        shutil.copyfile(minted / source, staging)
        os.replace(staging, files / target)


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    envoy_binary()
    # Unix socket paths must stay under 107 bytes: keep the tree short.
    base = Path(tempfile.mkdtemp(prefix="na-", dir="/tmp"))
    started: list[Any] = []
    try:
        ca = start_citadel_server(base / "ca")
        started.append(ca)
        roots = base / "roots.pem"
        roots.write_bytes(ca.root_bundle_pem())
        files = base / "files"
        files.mkdir()
        ca.mint(FILES_ID, base / "minted-1")
        _install(base / "minted-1", files)
        shutil.copyfile(roots, files / "root.pem")

        app = App()
        started.append(app)
        client_agent = AgentProcess(
            agent_config(base, "client", CLIENT_ID, ca, ca.create_join_token(CLIENT_ID)),
            base / "client",
            name="client-agent",
        )
        server_agent = AgentProcess(
            agent_config(
                base,
                "server",
                SERVER_ID,
                ca,
                ca.create_join_token(SERVER_ID),
                file_secrets={"allowed_dirs": [str(files)], "debounce_seconds": 0.1},
            ),
            base / "server",
            name="server-agent",
        )
        for agent in (client_agent, server_agent):
            started.append(agent)
            agent.start()

        server_doc = adapt_for_test(
            load_example("server-sidecar.yaml"), sds_socket=base / "server" / "sds.sock"
        )
        adapt_cluster_endpoint(server_doc, "local_app", app.port)
        listeners = server_doc["static_resources"]["listeners"]
        listeners.append(_files_listener(listeners[0], files))
        set_sds_api_type(server_doc, "DELTA_GRPC")
        server_envoy = EnvoyProcess(server_doc, base / "envoy-server", "server-envoy")
        started.append(server_envoy)
        server_envoy.start()
        inbound_port = server_envoy.listener_port("inbound_mtls")

        client_doc = adapt_for_test(
            load_example("client-sidecar.yaml"), sds_socket=base / "client" / "sds.sock"
        )
        adapt_cluster_endpoint(client_doc, "server_mtls", inbound_port)
        client_envoy = EnvoyProcess(client_doc, base / "envoy-client", "client-envoy")
        started.append(client_envoy)
        client_envoy.start()

        yield Mesh(
            base=base,
            ca=ca,
            roots=roots,
            client_agent=client_agent,
            server_agent=server_agent,
            client_envoy=client_envoy,
            server_envoy=server_envoy,
            app=app,
            files=files,
            outbound_port=client_envoy.listener_port("outbound"),
            inbound_port=inbound_port,
            files_port=server_envoy.listener_port("files_tls"),
        )
    finally:
        for process in reversed(started):
            process.stop()
        shutil.rmtree(base, ignore_errors=True)


def _until_ok(mesh: Mesh, timeout: float = 10.0) -> tuple[int, str]:
    result: list[tuple[int, str]] = []

    def ok() -> bool:
        result.append(get_via(mesh.outbound_port))
        return result[-1][0] == 200

    assert wait_for(ok, timeout=timeout, interval=0.1), (
        f"{result[-1:]}\n{mesh.client_envoy.log_tail()}"
    )
    return result[-1]


def test_request_through_both_sidecars_carries_the_client_spiffe_id(mesh: Mesh) -> None:
    status, body = _until_ok(mesh)
    assert status == 200
    assert "hello from app" in body
    assert f"URI={CLIENT_ID}" in body  # set by the server Envoy from the verified client cert
    for agent in (mesh.client_agent, mesh.server_agent):
        assert "(asked with join_token)" in agent.log_text()


def test_server_sidecar_accepts_only_the_client_spiffe_id(mesh: Mesh) -> None:
    peer = mesh.inbound_peer()
    assert peer.uri_sans == (SERVER_ID,)
    intruder = mesh.ca.mint(INTRUDER_ID, mesh.base / "intruder")
    with pytest.raises(HandshakeFailed):
        handshake(
            mesh.inbound_port,
            roots=mesh.roots,
            client_cert=(intruder / "cert-chain.pem", intruder / "key.pem"),
            max_tls12=True,
        )
    with pytest.raises(HandshakeFailed):  # no client certificate at all
        handshake(mesh.inbound_port, roots=mesh.roots, client_cert=None, max_tls12=True)


def test_delta_and_sotw_streams_both_serve_real_envoys(mesh: Mesh) -> None:
    assert mesh.server_agent.metric('citadel_agent_sds_streams{api="delta"}') >= 2
    assert mesh.client_agent.metric('citadel_agent_sds_streams{api="sotw"}') >= 2
    assert mesh.server_envoy.stat("sds.default.update_success") >= 1
    assert mesh.client_envoy.stat("sds.default.update_success") >= 1
    assert mesh.server_envoy.stat("sds.default.update_rejected") == 0
    assert mesh.client_envoy.stat("sds.default.update_rejected") == 0


def test_rotation_reaches_new_handshakes_without_a_failed_request(mesh: Mesh) -> None:
    first = mesh.inbound_peer().serial_hex
    failures: list[str] = []
    requests = 0
    deadline = time.monotonic() + 30
    rotated = None
    while time.monotonic() < deadline:
        requests += 1
        try:
            status, body = get_via(mesh.outbound_port)
        except (OSError, http.client.HTTPException) as exc:
            status, body = 0, repr(exc)
        if status != 200:
            failures.append(f"{status} {body[:100]}")
        try:
            serial = mesh.inbound_peer().serial_hex
        except HandshakeFailed:  # the client key file can be mid-replacement; retry
            continue
        if serial != first:
            rotated = serial
            break
        time.sleep(0.1)
    assert rotated is not None, mesh.server_agent.log_tail()
    assert failures == [], f"{len(failures)} of {requests} requests failed: {failures[:3]}"
    assert rotated in {mesh.server_agent.serial(), *mesh.server_envoy.served_serials()}
    # The client Envoy picks up its own rotations too.
    assert wait_for(
        lambda: mesh.client_agent.serial() in mesh.client_envoy.served_serials(), timeout=15
    )
    assert mesh.server_envoy.stat("sds.default.update_rejected") == 0
    assert "(asked with current_certificate)" in mesh.server_agent.log_text()  # mTLS renewal


def test_replacing_mounted_files_updates_what_envoy_serves(mesh: Mesh) -> None:
    def files_serial() -> str:
        return handshake(mesh.files_port, roots=mesh.roots).serial_hex

    before = files_serial()
    minted = mesh.ca.mint(FILES_ID, mesh.base / "minted-2")
    expected = _serial_of(minted / "cert-chain.pem")
    assert expected != before
    _install(minted, mesh.files)
    assert wait_for(lambda: files_serial() == expected, timeout=10), mesh.server_agent.log_tail()


def test_bad_mounted_files_never_reach_envoy(mesh: Mesh) -> None:
    serving = handshake(mesh.files_port, roots=mesh.roots).serial_hex
    rejected_before = mesh.server_agent.metric(
        'citadel_agent_secrets_rejected_total{source="file"}'
    )
    mismatched = mesh.base / "mismatched"
    mesh.ca.mint(FILES_ID, mismatched)
    other = mesh.ca.mint(FILES_ID, mesh.base / "minted-3")
    shutil.copyfile(other / "key.pem", mismatched / "key.pem")  # key of another certificate
    _install(mismatched, mesh.files)
    assert wait_for(
        lambda: (
            mesh.server_agent.metric('citadel_agent_secrets_rejected_total{source="file"}')
            > rejected_before
        ),
        timeout=10,
    ), mesh.server_agent.log_tail()
    assert handshake(mesh.files_port, roots=mesh.roots).serial_hex == serving
    rejected = sum(
        value
        for name, value in mesh.server_envoy.stats("update_rejected").items()
        if name.startswith("sds.")
    )
    assert rejected == 0  # Envoy never saw, let alone NACKed, the bad pair
    assert "does not match the leaf certificate" in mesh.server_agent.log_text()


def test_envoy_reconnects_to_a_restarted_agent_and_gets_its_current_secret(mesh: Mesh) -> None:
    agent = mesh.client_agent
    envoy_pid = mesh.client_envoy.pid
    agent.kill()  # no clean shutdown: the socket file is left behind
    assert (mesh.base / "client" / "sds.sock").exists()
    assert get_via(mesh.outbound_port)[0] == 200  # Envoy keeps its cached certificate
    (mesh.base / "client" / "join-token").write_text(mesh.ca.create_join_token(CLIENT_ID))
    agent.start()
    assert "removing stale SDS socket" in agent.log_text()
    assert wait_for(lambda: agent.serial() in mesh.client_envoy.served_serials(), timeout=15), (
        mesh.client_envoy.log_tail()
    )
    assert mesh.client_envoy.pid == envoy_pid
    assert _until_ok(mesh)[0] == 200


def test_ca_outage_keeps_traffic_on_cached_certificates_and_the_agent_recovers(
    mesh: Mesh,
) -> None:
    envoy_pids = (mesh.client_envoy.pid, mesh.server_envoy.pid)
    cached = mesh.server_agent.serial()
    mesh.ca.stop()
    try:
        mesh.server_agent.rotate()
        assert wait_for(
            lambda: mesh.server_agent.metric("citadel_agent_ca_unreachable") == 1, timeout=10
        ), mesh.server_agent.log_tail()
        assert mesh.server_agent.status()["ca_unreachable"] is True
        assert mesh.server_agent.get("/ready")[0] == 200  # the cached certificate is valid
        for _ in range(10):
            assert get_via(mesh.outbound_port)[0] == 200
            time.sleep(0.1)
        assert mesh.server_agent.serial() == cached
        assert "still serving the cached certificate" in mesh.server_agent.log_text()
    finally:
        mesh.ca.restart()
    assert wait_for(
        lambda: (
            mesh.server_agent.metric("citadel_agent_ca_unreachable") == 0
            and mesh.server_agent.serial() != cached
        ),
        timeout=20,
    ), mesh.server_agent.log_tail()
    renewed = mesh.server_agent.serial()
    assert wait_for(lambda: mesh.inbound_peer().serial_hex == renewed, timeout=10)
    assert get_via(mesh.outbound_port)[0] == 200
    assert (mesh.client_envoy.pid, mesh.server_envoy.pid) == envoy_pids
    assert mesh.client_envoy.process is not None and mesh.client_envoy.process.poll() is None
    assert mesh.server_envoy.process is not None and mesh.server_envoy.process.poll() is None


def _serial_of(chain: Path) -> str:
    from citadel.identity.pem import load_certificates_pem, serial_hex

    return serial_hex(load_certificates_pem(chain.read_bytes())[0])
