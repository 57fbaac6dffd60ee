"""The Workload API as a third-party client (py-spiffe, in its own process) sees it.

Each client process is started as root, imports py-spiffe, then drops to a workload uid
before it connects; the server attests it over SO_PEERCRED. Real time is used here: the
third-party client checks JWT expiry against the wall clock.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import SystemClock
from citadel.identity.jwt_svid import PrivateKeyJwtSigner
from citadel.identity.keys import KeyType, generate_private_key
from node_agent.workload_api.server import ENDPOINT_ENV, WorkloadApiServer
from tests.fixtures.pki import Pki, make_pki
from tests.peers import require_peer
from tests.unit.node_agent.workload_api.fakes import FakeIdentitySource, make_entry, svid_material
from tests.unit.node_agent.workload_api.harness import running_server

pytestmark = pytest.mark.integration

CLIENT = Path(__file__).with_name("pyspiffe_client.py")
WORKLOAD_GROUP = 2000  # may reach the socket directory; bare ids, nothing is created
ALICE, BOB, MALLORY = 1000, 1001, 1002
ALICE_ID = "spiffe://example.org/ns/shop/sa/alice"
BOB_ID = "spiffe://example.org/ns/shop/sa/bob"
LINE_WAIT = 30.0


@pytest.fixture(scope="module", autouse=True)
def _pyspiffe_installed() -> None:
    import importlib.util

    require_peer(importlib.util.find_spec("spiffe") is not None, "py-spiffe (pip install spiffe)")
    require_peer(os.geteuid() == 0, "root, to run the clients as other uids")


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki("example.org", now=datetime.now(UTC))


@pytest.fixture
def source(pki: Pki) -> FakeIdentitySource:
    signer = PrivateKeyJwtSigner("jwt-1", generate_private_key(KeyType.EC_P256))
    partner = make_pki("partner.org", now=datetime.now(UTC))
    bundles = [
        TrustBundle(pki.trust_domain, (pki.root,), (signer.authority(),)),
        TrustBundle(partner.trust_domain, (partner.root,)),
    ]
    source = FakeIdentitySource(clock=SystemClock(), signer=signer, bundles=bundles)
    for entry in (
        make_entry("alice", ALICE_ID, f"unix:uid:{ALICE}"),
        make_entry("bob", BOB_ID, f"unix:uid:{BOB}"),
    ):
        source.put(entry, svid_material(pki, entry.spiffe_id))
    return source


@asynccontextmanager
async def workload_api(source: FakeIdentitySource) -> AsyncIterator[WorkloadApiServer]:
    async with running_server(source, clock=SystemClock(), socket_group=WORKLOAD_GROUP) as server:
        # The temporary parent is root's 0700 directory: open it for traversal only.
        os.chmod(Path(server.endpoint[len("unix://") :]).parent.parent, 0o711)  # noqa: S103 (traverse only)
        yield server


class Client:
    """One py-spiffe process, running as ``uid``."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout: float = LINE_WAIT) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert raw, "client ended without output"
        value: dict[str, Any] = json.loads(raw)
        return value

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()


@asynccontextmanager
async def client(server: WorkloadApiServer, mode: str, uid: int) -> AsyncIterator[Client]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CLIENT),
        mode,
        "--uid",
        str(uid),
        "--gid",
        str(uid),
        "--groups",
        str(WORKLOAD_GROUP),
        env={ENDPOINT_ENV: server.endpoint, "PATH": os.environ.get("PATH", "")},
        stdout=asyncio.subprocess.PIPE,
    )
    running = Client(process)
    try:
        yield running
    finally:
        await running.stop()


def run(
    source: FakeIdentitySource, scenario: Callable[[WorkloadApiServer], Awaitable[None]]
) -> None:
    async def main() -> None:
        async with workload_api(source) as server:
            await scenario(server)

    asyncio.run(main())


def test_pyspiffe_fetches_svid_bundles_and_a_jwt_it_validates_through_us(
    source: FakeIdentitySource, pki: Pki
) -> None:
    async def scenario(server: WorkloadApiServer) -> None:
        async with client(server, "fetch-all", ALICE) as alice:
            result = await alice.line()
        assert "error" not in result, result
        assert result["x509"]["spiffe_id"] == ALICE_ID
        assert result["x509"]["chain_length"] == 2  # leaf + intermediate, leaf first
        assert result["x509_bundle_domains"] == ["example.org", "partner.org"]
        assert result["own_bundle_roots"] == 1
        assert result["jwt_bundle_domains"] == ["example.org", "partner.org"]
        assert result["jwt"] == {"spiffe_id": ALICE_ID, "audience": ["billing"]}
        assert result["validated"] == {"spiffe_id": ALICE_ID, "audience": ["billing"]}

    run(source, scenario)
    assert source.mint_calls[0][1] == ("billing",)


def test_same_socket_gives_each_uid_its_own_identity_and_none_to_strangers(
    source: FakeIdentitySource,
) -> None:
    async def scenario(server: WorkloadApiServer) -> None:
        async with (
            client(server, "fetch-x509", ALICE) as alice,
            client(server, "fetch-x509", BOB) as bob,
            client(server, "fetch-x509", MALLORY) as mallory,
        ):
            results = [await c.line() for c in (alice, bob, mallory)]
        assert results[0]["spiffe_id"] == ALICE_ID
        assert results[1]["spiffe_id"] == BOB_ID
        assert results[2]["code"] == "PERMISSION_DENIED", results[2]

    run(source, scenario)


def test_x509_source_sees_a_rotation_pushed_by_the_agent(
    source: FakeIdentitySource, pki: Pki
) -> None:
    entry = make_entry("alice", ALICE_ID, f"unix:uid:{ALICE}")
    rotated = svid_material(pki, entry.spiffe_id)

    async def scenario(server: WorkloadApiServer) -> None:
        async with client(server, "watch", ALICE) as watcher:
            first = await watcher.line()
            assert "error" not in first, first
            source.put(entry, rotated)
            second = await watcher.line()
        assert first["serial"] != second["serial"] == rotated.serial_hex

    run(source, scenario)
