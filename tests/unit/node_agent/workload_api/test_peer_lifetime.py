"""A stream belongs to the attested process: when it exits, the stream ends.

A Unix socket can outlive the process that connected (it may be inherited by a child), so
the servicer checks the pinned process before every push. These tests drive the servicer
directly with a pinned ``sleep`` process that they kill.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from citadel._proto import workload_pb2
from citadel.identity.clock import ManualClock
from citadel.identity.selectors import Selector
from node_agent.attestation import PeerCredentials, PeerProcess, ProcFs
from node_agent.workload_api.peer_registry import PeerRegistry
from node_agent.workload_api.servicer import SECURITY_HEADER, WorkloadApiServicer
from tests.fixtures.pki import Pki
from tests.unit.node_agent.workload_api.fakes import FakeIdentitySource, make_entry, svid_material

WEB = "spiffe://example.org/ns/default/sa/web"
SELECTORS = frozenset({Selector.parse("unix:uid:1000")})


class Aborted(Exception):
    pass


class FakeContext:
    def __init__(self, peer: str) -> None:
        self._peer = peer
        self.code: grpc.StatusCode | None = None
        self.details = ""

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (SECURITY_HEADER,)

    def peer(self) -> str:
        return self._peer

    async def abort(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details = code, details
        raise Aborted(details)


class FixedAttestor:
    def attest(self, peer: PeerProcess) -> frozenset[Selector]:
        return SELECTORS


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(["sleep", "30"])
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


def test_stream_ends_with_permission_denied_once_the_attested_process_exits(
    source: FakeIdentitySource,
    clock: ManualClock,
    td_pki: Pki,
    sleeper: subprocess.Popen[bytes],
) -> None:
    entry = make_entry("web", WEB, "unix:uid:1000")
    source.put(entry, svid_material(td_pki, entry.spiffe_id))
    registry = PeerRegistry()
    address = registry.new_address()
    peer = PeerProcess(
        PeerCredentials(sleeper.pid, 1000, 1000),
        os.pidfd_open(sleeper.pid),
        ProcFs().start_time(sleeper.pid),
    )
    registry.register(address, peer)
    servicer = WorkloadApiServicer(
        source=source, attestor=FixedAttestor(), registry=registry, clock=clock
    )
    context = FakeContext(f"unix-abstract:{address}")

    async def main() -> None:
        untyped: Any = context  # duck-typed stand-in for grpc.aio.ServicerContext
        stream: Any = servicer.FetchX509SVID(workload_pb2.X509SVIDRequest(), untyped)
        first = await asyncio.wait_for(anext(stream), 5)
        assert first.svids[0].spiffe_id == WEB
        sleeper.kill()
        sleeper.wait(timeout=10)
        source.put(entry, svid_material(td_pki, entry.spiffe_id))  # a rotation to push
        with pytest.raises(Aborted):
            await asyncio.wait_for(anext(stream), 5)

    asyncio.run(main())
    peer.close()
    assert context.code == grpc.StatusCode.PERMISSION_DENIED
    assert context.details == "caller could not be attested"
    assert source.subscriber_count == 0
