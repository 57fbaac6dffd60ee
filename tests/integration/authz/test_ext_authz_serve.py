"""``citadel authz serve`` as a real process: ext_authz Check over loopback and Unix sockets."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc

from tests.unit.authz.conftest import BACKEND, FRONTEND, allow_policy

_REPO = Path(__file__).resolve().parents[3]


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not selector.select(timeout):
            raise AssertionError(f"no output within {timeout} s")
        return proc.stdout.readline()
    finally:
        selector.close()


@pytest.fixture
def serve(policy_dir: Path) -> Iterator[Any]:
    procs: list[subprocess.Popen[str]] = []

    def start(listen: str, *extra: str) -> tuple[subprocess.Popen[str], str]:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "citadel.authz.cli",
                "serve",
                "--policy",
                str(policy_dir),
                "--listen",
                listen,
                "--trust-domain",
                "example.org",
                *extra,
            ],
            cwd=_REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        procs.append(proc)
        line = _read_line(proc, timeout=30)
        assert line.startswith("listening on "), line
        return proc, line.removeprefix("listening on ").strip()

    try:
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _check(address: str, principal: str) -> Any:
    request = external_auth_pb2.CheckRequest()
    request.attributes.source.principal = principal
    request.attributes.request.http.method = "GET"
    request.attributes.request.http.path = "/"
    with grpc.insecure_channel(address) as channel:
        stub = external_auth_pb2_grpc.AuthorizationStub(channel)
        return stub.Check(request, timeout=10, wait_for_ready=True)


def _wait_until(predicate: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return bool(predicate())


def test_serve_answers_check_and_reloads_policy(serve: Any, policy_dir: Path) -> None:
    (policy_dir / "allow.yaml").write_text(allow_policy("fe", principals=[FRONTEND]))
    proc, address = serve("127.0.0.1:0")
    assert address.startswith("127.0.0.1:") and not address.endswith(":0")
    assert _check(address, FRONTEND).status.code == 0
    denied = _check(address, BACKEND)
    assert denied.denied_response.status.code == 403
    assert denied.denied_response.body == "permission denied\n"
    foreign = _check(address, "spiffe://foreign.org/ns/prod/sa/frontend")
    assert foreign.denied_response.status.code == 403

    (policy_dir / "allow.yaml").write_text(allow_policy("fe", principals=[BACKEND]))
    assert _wait_until(lambda: _check(address, BACKEND).status.code == 0)

    (policy_dir / "allow.yaml").write_text("apiVersion: [")
    time.sleep(1.0)  # give the watcher time to try (and refuse) the broken file
    assert _check(address, BACKEND).status.code == 0

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0


def test_serve_on_a_unix_socket(serve: Any, policy_dir: Path, tmp_path: Path) -> None:
    (policy_dir / "allow.yaml").write_text(allow_policy("fe", principals=[FRONTEND]))
    socket_dir = tmp_path / "run"
    proc, address = serve(f"unix:{socket_dir}/authz.sock")
    assert address == f"unix:{socket_dir}/authz.sock"
    assert oct(os.stat(socket_dir).st_mode & 0o777) == oct(0o750)
    assert _check(address, FRONTEND).status.code == 0
    assert _check(address, BACKEND).denied_response.status.code == 403
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=15) == 0


def test_serve_default_action_allow_without_policies(serve: Any) -> None:
    _, address = serve("127.0.0.1:0", "--default-action", "allow")
    assert _check(address, BACKEND).status.code == 0
