"""Private keys and sockets stay private, whatever the umask, when the real commands run.

Each test runs a real command (``citadel init``, ``citadel cert mint``, ``citadel csr
request``, ``citadel-agent run``) or server under umask 000, the most permissive one, then
audits the whole tree it wrote: every file holding a private key is 0600, and no directory
holding a key or a socket, and no socket, is open to "others".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import SystemClock
from tests.fixtures.pki import make_pki
from tests.integration.node_agent.agent_process import AgentProcess
from tests.integration.node_agent.mesh import agent_config
from tests.peers.citadel_server import CitadelServer, start_citadel_server
from tests.unit.hygiene.tree_audit import audit_tree
from tests.unit.node_agent.workload_api.fakes import FakeIdentitySource
from tests.unit.node_agent.workload_api.harness import running_server

pytestmark = [pytest.mark.timeout(120)]

CITADEL = str(Path(sys.executable).with_name("citadel"))
WORKLOAD = "spiffe://example.org/ns/hygiene/sa/workload"
PASSPHRASE_ENV = {"CITADEL_KEY_PASSPHRASE": "hygiene-test-passphrase"}


@contextmanager
def permissive_umask() -> Iterator[None]:
    """umask 000 for this process (and the children it starts) inside the block."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def _citadel(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CITADEL, "--data-dir", str(data), "--trust-domain", "example.org", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **PASSPHRASE_ENV},
        umask=0,
    )


@pytest.fixture(scope="module")
def ca() -> Iterator[CitadelServer]:
    base = Path(tempfile.mkdtemp(prefix="hyg-", dir="/tmp"))
    server = None
    try:
        with permissive_umask():
            server = start_citadel_server(base / "ca")
        yield server
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_init_keeps_the_ca_keys_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = _citadel(data, "init")
    assert result.returncode == 0, result.stderr
    audit = audit_tree(tmp_path)
    assert audit.key_files, "init wrote no key file at all?"
    assert audit.problems == []
    assert os.stat(data).st_mode & 0o077 == 0


def test_cert_mint_writes_the_workload_key_0600(tmp_path: Path) -> None:
    assert _citadel(tmp_path / "data", "init").returncode == 0
    out = tmp_path / "minted"
    result = _citadel(tmp_path / "data", "cert", "mint", "--spiffe-id", WORKLOAD, "--out", str(out))
    assert result.returncode == 0, result.stderr
    audit = audit_tree(out)
    assert out / "key.pem" in audit.key_files
    assert audit.problems == []


def test_the_running_ca_keeps_its_data_directory_private(ca: CitadelServer) -> None:
    audit = audit_tree(ca.data_dir)
    assert audit.key_files
    assert audit.problems == []


def test_csr_request_writes_the_workload_key_0600(ca: CitadelServer, tmp_path: Path) -> None:
    roots = tmp_path / "roots.pem"
    roots.write_bytes(ca.root_bundle_pem())
    out = tmp_path / "requested"
    result = subprocess.run(
        [CITADEL, "csr", "request", "--server", ca.address, "--ca-cert", str(roots),
         "--join-token", ca.create_join_token(WORKLOAD), "--spiffe-id", WORKLOAD,
         "--server-name", "localhost", "--out", str(out)],
        capture_output=True, text=True, timeout=60, check=False, umask=0,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    audit = audit_tree(out)
    assert out / "key.pem" in audit.key_files
    assert audit.problems == []


def test_agent_writes_its_key_and_serves_sds_privately(ca: CitadelServer) -> None:
    base = Path(tempfile.mkdtemp(prefix="hyg-", dir="/tmp"))  # short: a socket lives here
    agent = None
    try:
        (base / "roots.pem").write_bytes(ca.root_bundle_pem())
        config = agent_config(base, "a", WORKLOAD, ca, ca.create_join_token(WORKLOAD))
        # The agent creates the socket and output directories itself (not the harness).
        config["sds"] = {"socket_path": str(base / "a" / "sds" / "agent.sock")}
        with permissive_umask():
            agent = AgentProcess(config, base / "a", name="hygiene-agent").start()
        audit = audit_tree(base)
        assert base / "a" / "out" / "key.pem" in audit.key_files
        assert base / "a" / "sds" / "agent.sock" in audit.sockets
        assert audit.problems == []
    finally:
        if agent is not None:
            agent.stop()
        shutil.rmtree(base, ignore_errors=True)


def test_workload_api_socket_directory_is_private() -> None:
    pki = make_pki("example.org", now=datetime.now(UTC))
    source = FakeIdentitySource(
        clock=SystemClock(), bundles=[TrustBundle(pki.trust_domain, (pki.root,), ())]
    )

    async def serve_and_audit() -> list[str]:
        async with running_server(source, clock=SystemClock()) as server:
            socket_path = Path(server.endpoint.removeprefix("unix://"))
            audit = audit_tree(socket_path.parent)
            assert socket_path in audit.sockets
            return audit.problems

    with permissive_umask():
        problems = asyncio.run(serve_and_audit())
    assert problems == []
