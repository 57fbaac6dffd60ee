"""End to end: ``citadel serve`` (a subprocess), a node agent joined with a one-time token,
an entry registered with ``citadel entry create``, and py-spiffe (its own process, dropped to
uid 1000) fetching that entry's X509-SVID and a JWT-SVID it validates through the agent.

The agent runs in this process (the entry service is attached to it the way the agent's run
path will do it); the workloads are attested over SO_PEERCRED.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from node_agent.agent import Agent
from node_agent.config import parse_config
from node_agent.entries.service import EntryIdentityService, EntrySettings, attach_entry_identities
from node_agent.workload_api.server import ENDPOINT_ENV, WorkloadApiConfig
from tests.peers import require_peer
from tests.peers.citadel_server import CitadelServer, start_citadel_server
from tests.unit.node_agent.workload_api.harness import short_tmp_dir

pytestmark = pytest.mark.integration

CLIENT = Path(__file__).parents[1] / "workload_api" / "pyspiffe_client.py"
AGENT_ID = "spiffe://example.org/citadel/agent/node-1"
ALICE_ID = "spiffe://example.org/ns/shop/sa/alice"
ALICE, MALLORY = 1000, 1002
WORKLOAD_GROUP = 2000
WAIT = 30.0


@pytest.fixture(scope="module", autouse=True)
def _peers() -> None:
    import importlib.util

    require_peer(importlib.util.find_spec("spiffe") is not None, "py-spiffe (pip install spiffe)")
    require_peer(os.geteuid() == 0, "root, to run the clients as other uids")


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[CitadelServer]:
    server = start_citadel_server(tmp_path / "ca", trust_domain="example.org")
    try:
        yield server
    finally:
        server.stop()


def agent_config(ca: CitadelServer, base: Path) -> dict[str, Any]:
    roots = base / "roots.pem"
    roots.write_bytes(ca.root_bundle_pem())
    return {
        "spiffe_id": AGENT_ID,
        "ca": {
            "address": ca.address,
            "mtls_address": ca.mtls_address,
            "server_name": "localhost",
            "root_bundle": str(roots),
            "timeout_seconds": 5,
            "credential": {"type": "join_token", "token": ca.create_join_token(AGENT_ID)},
        },
        "sds": {"enabled": False},
        "status": {"port": 0},
    }


async def client(endpoint: str, uid: int) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(CLIENT), "fetch-all", "--uid", str(uid), "--gid", str(uid),
        "--groups", str(WORKLOAD_GROUP),
        env={ENDPOINT_ENV: endpoint, "PATH": os.environ.get("PATH", "")},
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), WAIT)
        assert line, "client ended without output"
        result: dict[str, Any] = json.loads(line)
        return result
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def wait_for_svid(service: EntryIdentityService, entry_id: str) -> None:
    deadline = time.monotonic() + WAIT
    while service.svids.current(entry_id) is None:
        assert time.monotonic() < deadline, service.status()
        await asyncio.sleep(0.1)


def test_pyspiffe_gets_the_identity_of_the_entry_registered_for_its_uid(
    ca: CitadelServer, tmp_path: Path
) -> None:
    created = json.loads(
        ca.cli(
            "entry", "create", "--parent", AGENT_ID, "--spiffe-id", ALICE_ID,
            "--selector", f"unix:uid:{ALICE}", "--output", "json",
        )
    )  # fmt: skip
    socket_dir = short_tmp_dir()

    async def main() -> None:
        agent = Agent(parse_config(agent_config(ca, tmp_path), env={}))
        await agent.start(pid=os.getpid())
        service = attach_entry_identities(
            agent,
            settings=EntrySettings(sync_interval=timedelta(seconds=1)),
            workload_api=WorkloadApiConfig(
                socket_path=socket_dir / "api" / "workload.sock", socket_group=WORKLOAD_GROUP
            ),
        )
        try:
            await service.start()
            os.chmod(socket_dir, 0o711)  # noqa: S103 (traverse only, for the workload uids)
            await wait_for_svid(service, created["entry_id"])
            assert service.workload_api is not None
            alice = await client(service.workload_api.endpoint, ALICE)
            mallory = await client(service.workload_api.endpoint, MALLORY)
        finally:
            await service.stop()
            await agent.stop()
        assert "error" not in alice, alice
        assert alice["x509"]["spiffe_id"] == ALICE_ID
        assert alice["x509"]["chain_length"] == 2
        assert alice["jwt"] == {"spiffe_id": ALICE_ID, "audience": ["billing"]}
        assert alice["validated"] == {"spiffe_id": ALICE_ID, "audience": ["billing"]}
        assert alice["jwt_bundle_domains"] == ["example.org"]
        assert mallory["code"] == "PERMISSION_DENIED", mallory

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
