"""Endpoint rules: the security header, callers that cannot be identified, socket files."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from citadel._proto import workload_pb2, workload_pb2_grpc
from citadel.identity.clock import ManualClock
from node_agent.errors import ConfigError, SocketInUseError, SocketPathError
from node_agent.workload_api.server import WorkloadApiConfig, WorkloadApiServer
from tests.unit.node_agent.workload_api.fakes import FakeIdentitySource, make_entry
from tests.unit.node_agent.workload_api.harness import (
    HEADER,
    channel_to,
    running_server,
    short_tmp_dir,
    stub_for,
)

WEB = "spiffe://example.org/ns/default/sa/web"
WORKLOAD_GROUP = 2000  # a bare gid: nothing is created on the system

Call = Callable[[Any, Any], Awaitable[Any]]


async def _stream_first(call: Any) -> Any:
    return await call.read()


CALLS: dict[str, Call] = {
    "FetchX509SVID": lambda stub, md: _stream_first(
        stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=md)
    ),
    "FetchX509Bundles": lambda stub, md: _stream_first(
        stub.FetchX509Bundles(workload_pb2.X509BundlesRequest(), metadata=md)
    ),
    "FetchJWTBundles": lambda stub, md: _stream_first(
        stub.FetchJWTBundles(workload_pb2.JWTBundlesRequest(), metadata=md)
    ),
    "FetchJWTSVID": lambda stub, md: stub.FetchJWTSVID(
        workload_pb2.JWTSVIDRequest(audience=["billing"]), metadata=md
    ),
    "ValidateJWTSVID": lambda stub, md: stub.ValidateJWTSVID(
        workload_pb2.ValidateJWTSVIDRequest(audience="billing", svid="a.b.c"), metadata=md
    ),
}


def status_of(
    source: FakeIdentitySource, clock: ManualClock, method: str, metadata: Any
) -> tuple[grpc.StatusCode, str]:
    async def main() -> tuple[grpc.StatusCode, str]:
        async with running_server(source, clock=clock) as server, channel_to(server) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(CALLS[method](stub_for(channel), metadata), 5)
            return info.value.code(), info.value.details() or ""

    return asyncio.run(main())


@pytest.mark.parametrize("method", sorted(CALLS), ids=sorted(CALLS))
def test_call_without_the_security_header_is_invalid_argument(
    source: FakeIdentitySource, clock: ManualClock, method: str
) -> None:
    source.put(make_entry("web", WEB, "unix:uid:0"), None)
    assert status_of(source, clock, method, None) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "security header missing from request",
    )
    assert source.attested == []  # refused before attestation


@pytest.mark.parametrize(
    "metadata",
    [(("workload.spiffe.io", "false"),), (("workload.spiffe.io", "TRUE"),), (("x-other", "true"),)],
    ids=["false", "uppercase-true", "other-header"],
)
def test_security_header_must_say_exactly_true(
    source: FakeIdentitySource, clock: ManualClock, metadata: Any
) -> None:
    source.put(make_entry("web", WEB, "unix:uid:0"), None)
    code, _ = status_of(source, clock, "FetchJWTSVID", metadata)
    assert code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize("method", ["FetchJWTSVID", "ValidateJWTSVID"])
def test_unregistered_caller_is_denied_on_unary_calls(
    source: FakeIdentitySource, clock: ManualClock, method: str
) -> None:
    source.put(make_entry("web", WEB, "unix:uid:4242"), None)
    assert status_of(source, clock, method, HEADER) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "no identity issued",
    )
    assert source.mint_calls == []


def test_call_that_bypasses_the_attesting_proxy_is_denied(
    source: FakeIdentitySource, clock: ManualClock
) -> None:
    """Even the agent's own user, connecting straight to the internal socket, gets nothing."""
    source.put(make_entry("web", WEB, "unix:uid:0"), None)

    async def main() -> tuple[grpc.StatusCode, str]:
        async with running_server(source, clock=clock) as server:
            (internal,) = Path(server.endpoint[len("unix://") :]).parent.glob(".wl-*/g.sock")
            async with grpc.aio.insecure_channel(f"unix:{internal}") as channel:
                stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    await stub.FetchJWTSVID(
                        workload_pb2.JWTSVIDRequest(audience=["b"]), metadata=HEADER
                    )
                return info.value.code(), info.value.details() or ""

    assert asyncio.run(main()) == (grpc.StatusCode.PERMISSION_DENIED, "caller is not identified")
    assert source.mint_calls == []


# --- the socket files ------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_private_socket_directory_is_0700_and_socket_0600(
    source: FakeIdentitySource, clock: ManualClock
) -> None:
    async def main() -> None:
        async with running_server(source, clock=clock) as server:
            path = Path(server.endpoint[len("unix://") :])
            assert server.endpoint == f"unix://{path}" and server.endpoint.startswith("unix:///")
            assert (_mode(path.parent), _mode(path)) == (0o700, 0o600)
            (internal,) = path.parent.glob(".wl-*/g.sock")
            assert _mode(internal.parent) == 0o700

    asyncio.run(main())


def test_group_socket_directory_is_0750_and_socket_0660_owned_by_the_group(
    source: FakeIdentitySource, clock: ManualClock
) -> None:
    async def main() -> None:
        async with running_server(source, clock=clock, socket_group=WORKLOAD_GROUP) as server:
            path = Path(server.endpoint[len("unix://") :])
            assert (_mode(path.parent), path.parent.stat().st_gid) == (0o750, WORKLOAD_GROUP)
            assert (_mode(path), path.lstat().st_gid) == (0o660, WORKLOAD_GROUP)
            (internal,) = path.parent.glob(".wl-*/g.sock")
            assert _mode(internal.parent) == 0o700

    asyncio.run(main())


def test_sockets_are_removed_on_stop(source: FakeIdentitySource, clock: ManualClock) -> None:
    async def main() -> Path:
        async with running_server(source, clock=clock) as server:
            path = Path(server.endpoint[len("unix://") :])
            await server.stop()
            assert not path.exists()
            assert list(path.parent.glob(".wl-*")) == []
            return path

    asyncio.run(main())


def _server(directory: Path, source: FakeIdentitySource, clock: ManualClock) -> WorkloadApiServer:
    config = WorkloadApiConfig(socket_path=directory / "api.sock")
    return WorkloadApiServer(config, source, clock=clock)


def test_stale_socket_file_is_replaced(source: FakeIdentitySource, clock: ManualClock) -> None:
    directory = short_tmp_dir()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(directory / "api.sock"))
    stale.close()  # the file stays, nobody listens

    async def main() -> None:
        server = _server(directory, source, clock)
        await server.start()
        await server.stop()

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(directory)


def test_socket_served_by_another_process_is_not_stolen(
    source: FakeIdentitySource, clock: ManualClock
) -> None:
    directory = short_tmp_dir()
    other = socket.socket(socket.AF_UNIX)
    other.bind(str(directory / "api.sock"))
    other.listen(1)

    async def main() -> None:
        with pytest.raises(SocketInUseError, match="another process is serving"):
            await _server(directory, source, clock).start()

    try:
        asyncio.run(main())
        assert (directory / "api.sock").exists()
    finally:
        other.close()
        shutil.rmtree(directory)


def test_regular_file_at_the_socket_path_is_refused(
    source: FakeIdentitySource, clock: ManualClock
) -> None:
    directory = short_tmp_dir()
    (directory / "api.sock").write_text("precious data")

    async def main() -> None:
        with pytest.raises(SocketPathError, match="is not a socket"):
            await _server(directory, source, clock).start()

    try:
        asyncio.run(main())
        assert (directory / "api.sock").read_text() == "precious data"
    finally:
        shutil.rmtree(directory)


def test_socket_directory_of_another_user_is_refused(
    source: FakeIdentitySource, clock: ManualClock
) -> None:
    directory = short_tmp_dir()
    os.chown(directory, 1000, 1000)

    async def main() -> None:
        with pytest.raises(SocketPathError, match="belongs to another user"):
            await _server(directory, source, clock).start()

    try:
        asyncio.run(main())
    finally:
        shutil.rmtree(directory)


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"socket_path": Path("relative/api.sock")}, "must be absolute"),
        ({"socket_path": Path("/tmp/" + "d" * 120 + "/api.sock")}, "longer than 107 bytes"),
        ({"socket_group": -1}, "must be a gid"),
        ({"max_connections": 0}, "must be positive"),
        ({"max_request_bytes": 1024}, "at least"),
    ],
    ids=["relative", "too-long", "negative-group", "no-connections", "tiny-requests"],
)
def test_bad_config_is_a_config_error(fields: dict[str, Any], match: str) -> None:
    values: dict[str, Any] = {"socket_path": Path("/tmp/wl/api.sock")}
    values.update(fields)
    with pytest.raises(ConfigError, match=match):
        WorkloadApiConfig(**values)


def test_connections_beyond_the_limit_are_closed(
    source: FakeIdentitySource, clock: ManualClock
) -> None:
    async def main() -> None:
        async with running_server(source, clock=clock, max_connections=1) as server:
            path = server.endpoint[len("unix://") :]
            _first_reader, first_writer = await asyncio.open_unix_connection(path)
            async with asyncio.timeout(5):
                while server.connection_count != 1:
                    await asyncio.sleep(0.01)
            second_reader, second_writer = await asyncio.open_unix_connection(path)
            assert await asyncio.wait_for(second_reader.read(), 5) == b""  # closed at once
            assert server.connection_count == 1
            for writer in (first_writer, second_writer):
                writer.close()

    asyncio.run(main())
