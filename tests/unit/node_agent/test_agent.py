"""The wired agent in process: fake CA signer, real SDS socket, real status endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from citadel.identity.clock import ManualClock
from node_agent.agent import Agent
from node_agent.cli import main
from node_agent.config import parse_config
from node_agent.errors import SocketInUseError
from tests.fakes.fake_ca import FakeCa, FakePki
from tests.unit.node_agent.conftest import WORKLOAD

WAIT_S = 10.0


def _config(tmp_path: Path, pki: FakePki) -> dict[str, object]:
    roots = tmp_path / "root-cert.pem"
    roots.write_bytes(pki.root_pem)
    token = tmp_path / "token"
    token.write_text("a.token")
    return {
        "spiffe_id": WORKLOAD,
        "ttl_seconds": 3600,
        "ca": {
            "address": "127.0.0.1:1",
            "root_bundle": str(roots),
            "credential": {"type": "token_file", "path": str(token)},
        },
        "sds": {"socket_path": str(tmp_path / "run" / "sds.sock")},
        "status": {"port": 0},
        "output_dir": str(tmp_path / "out"),
    }


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def _until(predicate: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _run(body: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(body(), 60))


def test_agent_becomes_ready_and_reports_its_identity(
    tmp_path: Path, pki: FakePki, clock: ManualClock, capsys: pytest.CaptureFixture[str]
) -> None:
    agent = Agent(parse_config(_config(tmp_path, pki), {}), clock=clock, signer=FakeCa(pki, clock))

    async def body() -> None:
        running = await agent.start(pid=os.getpid())
        base = f"http://127.0.0.1:{running.status_port}"
        try:
            await _until(lambda: _get(f"{base}/ready")[0] == 200)
            status = json.loads(_get(f"{base}/status")[1])
            [default] = [s for s in status["secrets"] if s["name"] == "default"]
            assert default["spiffe_id"] == WORKLOAD
            assert default["expires_in_seconds"] == 3600
            metrics = _get(f"{base}/metrics")[1].decode()
            assert 'citadel_agent_cert_expiry_seconds{resource_name="default"} 3600.0' in metrics
            assert 'citadel_agent_csr_requests_total{result="success"} 1.0' in metrics
            assert await asyncio.to_thread(main, ["status", "--url", base]) == 0
            printed = capsys.readouterr().out
            assert WORKLOAD in printed and default["serial"] in printed
            assert (tmp_path / "out" / "key.pem").stat().st_mode & 0o777 == 0o600
        finally:
            await agent.stop()
        assert not (tmp_path / "run" / "sds.sock").exists()

    _run(body)


def test_ready_is_503_until_a_certificate_is_cached(
    tmp_path: Path, pki: FakePki, clock: ManualClock
) -> None:
    config = _config(tmp_path, pki)
    agent = Agent(parse_config(config, {}), clock=clock)  # the real client: 127.0.0.1:1 is closed

    async def body() -> None:
        running = await agent.start(pid=os.getpid())
        base = f"http://127.0.0.1:{running.status_port}"
        try:
            await _until(lambda: agent.rotator.last_error is not None)
            code, text = _get(f"{base}/ready")
            assert code == 503 and b"no certificate yet" in text
            status = json.loads(_get(f"{base}/status")[1])
            assert status["ca_unreachable"] is True
        finally:
            await agent.stop()

    _run(body)


def test_rotate_endpoint_renews_now(tmp_path: Path, pki: FakePki, clock: ManualClock) -> None:
    agent = Agent(parse_config(_config(tmp_path, pki), {}), clock=clock, signer=FakeCa(pki, clock))

    async def body() -> None:
        running = await agent.start(pid=os.getpid())
        base = f"http://127.0.0.1:{running.status_port}"
        try:
            await _until(lambda: agent.rotator.current is not None)
            first = agent.rotator.current
            assert first is not None
            assert await asyncio.to_thread(main, ["rotate", "--url", base]) == 0
            await _until(lambda: agent.rotator.current != first)
        finally:
            await agent.stop()

    _run(body)


def test_second_agent_on_the_same_socket_refuses_to_start(
    tmp_path: Path, pki: FakePki, clock: ManualClock
) -> None:
    config = parse_config(_config(tmp_path, pki), {})
    first = Agent(config, clock=clock, signer=FakeCa(pki, clock))
    second = Agent(config, clock=clock, signer=FakeCa(pki, clock))

    async def body() -> None:
        await first.start(pid=os.getpid())
        try:
            with pytest.raises(SocketInUseError, match="in use by another live process"):
                await second.start(pid=os.getpid())
            assert (tmp_path / "run" / "sds.sock").exists()
        finally:
            await first.stop()

    _run(body)


def test_expired_certificate_makes_the_agent_unready(
    tmp_path: Path, pki: FakePki, clock: ManualClock
) -> None:
    ca = FakeCa(pki, clock)
    agent = Agent(parse_config(_config(tmp_path, pki), {}), clock=clock, signer=ca)

    async def body() -> None:
        await agent.start(pid=os.getpid())
        try:
            await _until(lambda: agent.readiness()[0])
            ca.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
            clock.advance(timedelta(hours=2))
            ready, reason = agent.readiness()
            assert not ready and "expired" in reason
        finally:
            await agent.stop()

    _run(body)
