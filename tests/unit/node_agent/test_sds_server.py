"""The SDS gRPC server on a real Unix socket, with grpc.aio clients playing Envoy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.secret.v3 import sds_pb2_grpc

from citadel.identity.clock import ManualClock
from node_agent.sds.server import SdsServer
from tests.unit.node_agent.conftest import MakeTls
from tests.unit.node_agent.sds_helpers import (
    Harness,
    delta_request,
    make_harness,
    sotw_request,
    unpack,
)

TIMEOUT = 5.0


class Requests:
    """An async request iterator a test can feed."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()

    def send(self, request: Any) -> None:
        self._queue.put_nowait(request)

    def close(self) -> None:
        self._queue.put_nowait(None)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while (item := await self._queue.get()) is not None:
            yield item


def run_with_server(tmp_path: Path, h: Harness, body: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        server = SdsServer(tmp_path / "sds" / "agent.sock", h.ctx)
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"unix:{server.socket_path}") as channel:
                await asyncio.wait_for(body(sds_pb2_grpc.SecretDiscoveryServiceStub(channel)), 20)
        finally:
            await server.stop(0)

    asyncio.run(main())


def test_stream_without_node_ends_with_invalid_argument(tmp_path: Path, clock: ManualClock) -> None:
    h = make_harness(clock)

    async def body(stub: Any) -> None:
        requests = Requests()
        call = stub.StreamSecrets(requests)
        requests.send(sotw_request("default", node=False))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await asyncio.wait_for(call.read(), TIMEOUT)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "must carry 'node'" in (caught.value.details() or "")

    run_with_server(tmp_path, h, body)
    sample = h.metrics.registry.get_sample_value(
        "citadel_agent_sds_stream_errors_total", {"reason": "invalid_sds_request"}
    )
    assert sample == 1


def test_unknown_name_keeps_the_stream_open_for_later_requests(
    tmp_path: Path, clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())

    async def body(stub: Any) -> None:
        requests = Requests()
        call = stub.StreamSecrets(requests)
        requests.send(sotw_request("nope"))
        read = asyncio.ensure_future(call.read())
        done, _ = await asyncio.wait({read}, timeout=0.3)
        assert not done  # nothing is sent for an unknown name, and the stream stays up
        requests.send(sotw_request("default"))
        response = await asyncio.wait_for(read, TIMEOUT)
        assert unpack(response.resources[0]).name == "default"
        requests.close()

    run_with_server(tmp_path, h, body)
    assert h.count("citadel_agent_sds_unknown_resources_total", "sotw") == 1


def test_rotation_is_pushed_to_every_open_stream(
    tmp_path: Path, clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    streams = 40

    async def body(stub: Any) -> None:
        calls = []
        for i in range(streams):
            requests = Requests()
            call = stub.DeltaSecrets(requests) if i % 2 else stub.StreamSecrets(requests)
            requests.send(delta_request(("default",)) if i % 2 else sotw_request("default"))
            calls.append((requests, call))
        for _, call in calls:
            await asyncio.wait_for(call.read(), TIMEOUT)
        rotated = make_tls()
        await asyncio.to_thread(h.cache.publish, rotated)  # publishers live on other threads
        for _, call in calls:
            response = await asyncio.wait_for(call.read(), TIMEOUT)
            resource = response.resources[0]
            secret = unpack(resource.resource if hasattr(resource, "version") else resource)
            assert secret.tls_certificate.certificate_chain.inline_bytes == rotated.cert_chain_pem
        for requests, _ in calls:
            requests.close()

    run_with_server(tmp_path, h, body)
    assert h.count("citadel_agent_sds_pushes_total", "sotw") == streams
    assert h.count("citadel_agent_sds_pushes_total", "delta") == streams


def test_closed_streams_release_their_subscriptions(
    tmp_path: Path, clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())

    async def body(stub: Any) -> None:
        requests = Requests()
        call = stub.StreamSecrets(requests)
        requests.send(sotw_request("default"))
        await asyncio.wait_for(call.read(), TIMEOUT)
        assert h.cache.subscriber_count() == 1
        call.cancel()
        for _ in range(100):
            if h.cache.subscriber_count() == 0:
                break
            await asyncio.sleep(0.02)
        assert h.cache.subscriber_count() == 0

    run_with_server(tmp_path, h, body)
    assert h.metrics.registry.get_sample_value("citadel_agent_sds_streams", {"api": "sotw"}) == 0


def test_socket_is_group_accessible_only(tmp_path: Path, clock: ManualClock) -> None:
    h = make_harness(clock)

    async def body(stub: Any) -> None:
        socket_path = tmp_path / "sds" / "agent.sock"
        assert socket_path.stat().st_mode & 0o777 == 0o660
        assert (tmp_path / "sds").stat().st_mode & 0o777 == 0o750

    run_with_server(tmp_path, h, body)
