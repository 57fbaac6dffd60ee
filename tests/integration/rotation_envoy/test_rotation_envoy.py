"""Zero-downtime rotation and fast revocation, end to end through two real Envoys.

The CA (``citadel serve``, authority watch every second) is rotated with the real CLI
(``citadel ca rotate ... --force``) while a thread sends a request through the client Envoy
every 50 ms, each one a new mTLS handshake with the server Envoy. The agents poll the CA's
trust bundle and CRLs every 2 s (their default) and hand both to Envoy in ``ROOTCA``;
their certificates live 30 s and are renewed on demand (``POST /rotate``) once the new
authority signs. Revocation uses ``citadel cert revoke``; nothing is restarted. Every
process is stopped by PID in teardown.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509

from citadel.identity.pem import certificate_fingerprint, load_certificates_pem, serial_hex
from tests.integration.node_agent.agent_process import AgentProcess
from tests.integration.node_agent.mesh import get_via, wait_for
from tests.integration.rotation_envoy.stack import (
    CLIENT_ID,
    RequestLoop,
    RotationMesh,
    envoy_ca_serials,
    rotation_mesh,
    trust_bundle,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(240)]

CA_CONFIG = {"authority_watch_interval": "1s", "automatic_rotation": False}


@pytest.fixture(scope="module")
def mesh() -> Iterator[RotationMesh]:
    with rotation_mesh(ca_config=CA_CONFIG) as started:
        assert wait_for(lambda: get_via(started.outbound_port)[0] == 200, timeout=15), (
            started.client_envoy.log_tail()
        )
        yield started


def _eventually(what: str, check: Callable[[], bool], mesh: RotationMesh, timeout: float) -> None:
    if not wait_for(check, timeout=timeout, interval=0.1):
        logs = "\n".join(f"--- {a.name}\n{a.log_tail(15)}" for a in mesh.agents)
        raise AssertionError(f"{what} within {timeout}s\n{logs}\n--- CA\n{mesh.ca.log_tail(20)}")


def _roots_of(agent: AgentProcess) -> set[str]:
    return set(trust_bundle(agent)["roots"])


def _crl_issuers(agent: AgentProcess) -> set[str]:
    return {crl["issuer"] for crl in trust_bundle(agent)["crls"]}


def _leaf_chain(agent: AgentProcess) -> list[x509.Certificate]:
    return load_certificates_pem((agent.workdir / "out" / "cert-chain.pem").read_bytes())


def _renew_until(
    mesh: RotationMesh, signed: Callable[[list[x509.Certificate]], bool], timeout: float = 20
) -> None:
    """Ask each agent to renew until its leaf satisfies ``signed`` and its Envoy serves it."""
    asked: dict[str, float] = {}

    def done() -> bool:
        finished = True
        for agent, envoy in zip(mesh.agents, mesh.envoys, strict=True):
            if signed(_leaf_chain(agent)):
                finished = finished and agent.serial() in envoy.served_serials()
                continue
            finished = False
            if time.monotonic() - asked.get(agent.name, 0.0) > 2.0:
                asked[agent.name] = time.monotonic()
                agent.rotate()
        return finished

    _eventually("both agents renew under the new authority", done, mesh, timeout)


def _acknowledged(mesh: RotationMesh) -> object:
    """Agents on the current bundle, as ``citadel ca rotate status`` reports them."""
    document = json.loads(mesh.ca.cli("ca", "rotate", "status", "--output", "json"))
    return document["bundle"]["agents_acknowledged"]


def _mint(mesh: RotationMesh, name: str, ttl: str = "10m") -> Path:
    return mesh.ca.mint(CLIENT_ID, mesh.base / name, ttl=ttl)


def _current_roots_file(mesh: RotationMesh, name: str) -> Path:
    path = mesh.base / name
    path.write_bytes(mesh.ca.root_bundle_pem())
    return path


def test_root_rotation_under_traffic_fails_no_request_and_the_old_root_is_dropped(
    mesh: RotationMesh,
) -> None:
    old_client = _mint(mesh, "old-root-client")
    old_roots = mesh.ca_roots()
    assert len(old_roots) == 1
    old_root = old_roots[0]
    assert not mesh.refused(old_client, _current_roots_file(mesh, "roots-before.pem"))

    with RequestLoop(mesh.outbound_port) as loop:
        mesh.ca.cli("ca", "rotate", "prepare", "--root")
        [new_root] = [r for r in mesh.ca_roots() if r != old_root]
        both = {certificate_fingerprint(old_root), certificate_fingerprint(new_root)}
        _eventually(
            "both agents trust the prepared root",
            lambda: all(_roots_of(a) == both for a in mesh.agents),
            mesh,
            15,
        )
        _eventually(
            "both Envoys validate with the prepared root",
            lambda: all(serial_hex(new_root) in envoy_ca_serials(e) for e in mesh.envoys),
            mesh,
            10,
        )

        mesh.ca.cli("ca", "rotate", "activate", "--root", "--force")
        _renew_until(mesh, lambda chain: chain[1].issuer == new_root.subject)

        mesh.ca.cli("ca", "rotate", "retire", "--root", "--force")
        only_new = {certificate_fingerprint(new_root)}
        _eventually(
            "both agents drop the retired root",
            lambda: all(_roots_of(a) == only_new for a in mesh.agents),
            mesh,
            15,
        )
        _eventually(
            "both Envoys drop the retired root",
            lambda: all(envoy_ca_serials(e) == {serial_hex(new_root)} for e in mesh.envoys),
            mesh,
            10,
        )
        _eventually(
            "'citadel ca rotate status' counts both agents on the new bundle",
            lambda: _acknowledged(mesh) == 2,
            mesh,
            15,
        )

    assert loop.sent >= 100, loop.sent
    assert loop.failures == [], f"{len(loop.failures)} of {loop.sent} failed: {loop.failures[:5]}"
    roots_now = _current_roots_file(mesh, "roots-after.pem")
    assert mesh.refused(old_client, roots_now)  # a leaf of the retired root: refused
    assert not mesh.refused(_mint(mesh, "new-root-client"), roots_now)  # same identity, new root
    for envoy in mesh.envoys:
        assert envoy.stat("sds.ROOTCA.update_rejected") == 0
        assert envoy.stat("sds.default.update_rejected") == 0


def test_intermediate_rotation_under_traffic_fails_no_request(mesh: RotationMesh) -> None:
    before = _crl_issuers(mesh.server_agent)
    old_signer = _leaf_chain(mesh.server_agent)[1].subject.rfc4514_string()
    with RequestLoop(mesh.outbound_port) as loop:
        mesh.ca.cli("ca", "rotate", "prepare", "--intermediate")
        _eventually(
            "both agents hand out the prepared intermediate's CRL",
            lambda: all(len(_crl_issuers(a) - before) == 1 for a in mesh.agents),
            mesh,
            15,
        )
        [new_signer] = _crl_issuers(mesh.server_agent) - before

        mesh.ca.cli("ca", "rotate", "activate", "--intermediate", "--force")
        _renew_until(mesh, lambda chain: chain[1].subject.rfc4514_string() == new_signer)

        mesh.ca.cli("ca", "rotate", "retire", "--intermediate", "--force")
        _eventually(
            "both agents drop the retired intermediate's CRL",
            lambda: all(old_signer not in _crl_issuers(a) for a in mesh.agents),
            mesh,
            15,
        )
        time.sleep(1.0)

    assert loop.sent >= 60, loop.sent
    assert loop.failures == [], f"{len(loop.failures)} of {loop.sent} failed: {loop.failures[:5]}"
    for envoy in mesh.envoys:
        assert envoy.stat("sds.ROOTCA.update_rejected") == 0


def test_a_revoked_client_certificate_is_refused_by_the_server_envoy_within_seconds(
    mesh: RotationMesh,
) -> None:
    roots = _current_roots_file(mesh, "roots-revocation.pem")
    client = _mint(mesh, "to-revoke")
    serial = serial_hex(load_certificates_pem((client / "cert-chain.pem").read_bytes())[0])
    assert not mesh.refused(client, roots)
    envoy_pids = (mesh.client_envoy.pid, mesh.server_envoy.pid)

    mesh.ca.cli("cert", "revoke", serial, "--reason", "keyCompromise")
    revoked_at = time.monotonic()
    _eventually(
        "the server Envoy refuses the revoked certificate",
        lambda: mesh.refused(client, roots),
        mesh,
        15,
    )
    elapsed = time.monotonic() - revoked_at

    assert elapsed < 8.0, elapsed  # CA watch (1 s) + agent poll (2 s) + push, with slack
    assert any(crl["revoked"] >= 1 for crl in trust_bundle(mesh.server_agent)["crls"])
    assert not mesh.refused(_mint(mesh, "not-revoked"), roots)  # others still get in
    assert get_via(mesh.outbound_port)[0] == 200
    assert (mesh.client_envoy.pid, mesh.server_envoy.pid) == envoy_pids  # nothing restarted
