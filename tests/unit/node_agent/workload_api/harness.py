"""Run a Workload API server on a short temporary socket path and talk to it with our stubs."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc

from citadel._proto import workload_pb2_grpc
from citadel.identity.clock import Clock
from node_agent.workload_api.server import WorkloadApiConfig, WorkloadApiServer
from node_agent.workload_api.servicer import WorkloadAttestor
from node_agent.workload_api.source import IdentitySource

__all__ = [
    "HEADER",
    "SHORT_WAIT",
    "channel_to",
    "read_next",
    "running_server",
    "short_tmp_dir",
    "stub_for",
]

HEADER = (("workload.spiffe.io", "true"),)
SHORT_WAIT = 5.0


def short_tmp_dir() -> Path:
    """A private directory with a short path (Unix socket paths are capped at 107 bytes)."""
    return Path(tempfile.mkdtemp(prefix="wl-", dir="/tmp"))


@asynccontextmanager
async def running_server(
    source: IdentitySource,
    *,
    clock: Clock,
    attestor: WorkloadAttestor | None = None,
    **config: Any,
) -> AsyncIterator[WorkloadApiServer]:
    directory = short_tmp_dir()
    server = WorkloadApiServer(
        WorkloadApiConfig(socket_path=directory / "api" / "workload.sock", **config),
        source,
        clock=clock,
        attestor=attestor,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop(grace=None)
        shutil.rmtree(directory, ignore_errors=True)


def channel_to(server: WorkloadApiServer) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(server.endpoint.replace("unix://", "unix:", 1))


def stub_for(channel: grpc.aio.Channel) -> Any:
    return workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)


async def read_next(call: Any, timeout: float = SHORT_WAIT) -> Any:
    """The next message of a server stream, failing the test instead of hanging."""
    message = await asyncio.wait_for(call.read(), timeout)
    assert message is not grpc.aio.EOF, "stream ended"
    return message
