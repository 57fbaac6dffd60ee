"""The real ``citadel serve`` process: ready file, graceful SIGTERM, several workers."""

from __future__ import annotations

import os
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest

from citadel.identity.pem import load_certificates_pem, serial_hex
from tests.fakes.istio_agent_client import IstioAgentClient, new_workload_csr
from tests.fakes.kube_api_server import (
    TOKEN_REVIEW_PATH,
    FakeKubeApiServer,
    FakeRequest,
    FakeResponse,
    TokenReviewBook,
)
from tests.integration.server.serve_process import (
    CitadelServe,
    child_pids,
    citadel,
    serving_certificate,
)
from tests.integration.server.tokens import K8S_ISSUER, kube_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SLOW_REVIEW_SECONDS = 2.0


class _Cluster:
    """A fake API server whose reviews of ``slow`` tokens take a while."""

    def __init__(self, directory: Path) -> None:
        self.api = FakeKubeApiServer(required_token="ca-token")
        self.book = TokenReviewBook()
        self.slow: set[str] = set()
        self.api.add_handler("POST", TOKEN_REVIEW_PATH, self._review)
        self.api.start()
        self.token_file = directory / "ca-token"
        self.token_file.write_text("ca-token")
        self.config = directory / "server.yaml"
        self.config.write_text(
            "kubernetes:\n"
            f"  api_server: {self.api.url}\n"
            f"  token_file: {self.token_file}\n"
            f"  issuers: [{K8S_ISSUER}]\n"
            "identity_rate_limit: null\n"
            "rate_limit: null\n"
        )

    def _review(self, request: FakeRequest) -> FakeResponse:
        response = self.book.handle(request)
        if request.json()["spec"]["token"] in self.slow:
            return replace(response, delay=SLOW_REVIEW_SECONDS)
        return response

    def token(self, namespace: str, account: str, *, slow: bool = False) -> str:
        token = kube_token(namespace, account, now=datetime.now(UTC), lifetime=timedelta(hours=1))
        self.book.allow(token, f"system:serviceaccount:{namespace}:{account}")
        if slow:
            self.slow.add(token)
        return token


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[_Cluster]:
    cluster = _Cluster(tmp_path)
    yield cluster
    cluster.api.stop()


def _args(cluster: _Cluster, workers: int) -> list[str]:
    return [
        "--config", str(cluster.config), "--listen", "127.0.0.1:0",
        "--mtls-listen", "off", "--metrics-listen", "127.0.0.1:0",
        "--workers", str(workers), "--grace", "15s",
    ]  # fmt: skip


def test_sigterm_lets_the_in_flight_request_finish_and_exits_zero(
    cluster: _Cluster, tmp_path: Path
) -> None:
    with CitadelServe(tmp_path / "data", _args(cluster, 1)) as serve:
        assert serve.ready["pid"] == serve.process.pid  # type: ignore[union-attr]
        assert serve.ready["metrics_port"] > 0
        agent = IstioAgentClient(
            serve.target, serve.root_pem(), token=cluster.token("d", "slow", slow=True)
        )
        _, csr = new_workload_csr("spiffe://cluster.local/ns/d/sa/slow")
        outcome: dict[str, object] = {}

        def call() -> None:
            try:
                outcome["chain"] = agent.csr_sign(csr)
            except Exception as exc:
                outcome["error"] = exc

        worker = threading.Thread(target=call)
        worker.start()
        deadline = time.monotonic() + 30
        while not cluster.api.requests_to("POST", TOKEN_REVIEW_PATH):
            assert time.monotonic() < deadline, serve.log()
            time.sleep(0.02)
        serve.terminate()  # the call is now waiting for its (slow) TokenReview
        worker.join(30)
        code = serve.wait(30)
        agent.close()

        assert "error" not in outcome, outcome.get("error")
        assert len(outcome["chain"]) == 3  # type: ignore[arg-type]
        assert code == 0, serve.log()
        assert not serve.ready_file.exists()
        assert "Traceback" not in serve.log()


def _issue_concurrently(
    serve: CitadelServe, cluster: _Cluster, accounts: int, per: int
) -> list[str]:
    root = serve.root_pem()
    serials: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        account = f"sa{index}"
        agent = IstioAgentClient(serve.target, root, token=cluster.token("load", account))
        try:
            for _ in range(per):
                _, csr = new_workload_csr(f"spiffe://cluster.local/ns/load/sa/{account}")
                chain = agent.csr_sign(csr)
                with lock:
                    serials.append(serial_hex(load_certificates_pem(chain[0])[0]))
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            agent.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(accounts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors[:3]
    return serials


def test_two_workers_share_one_sqlite_database_without_duplicate_serials(
    cluster: _Cluster, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    with CitadelServe(data, _args(cluster, 2)) as serve:
        assert serve.ready["workers"] == 2
        served_by = {
            serial_hex(serving_certificate(serve.ready["port"], serve.root_pem()))
            for _ in range(16)
        }
        serials = _issue_concurrently(serve, cluster, accounts=8, per=6)
        metrics = (
            urllib.request.urlopen(
                f"http://127.0.0.1:{serve.ready['metrics_port']}/metrics", timeout=10
            )
            .read()
            .decode()
        )
        serve.terminate()
        assert serve.wait(60) == 0, serve.log()

    assert len(served_by) == 2, "both workers accept connections (each has its own certificate)"
    assert len(serials) == 48
    assert len(set(serials)) == 48
    assert "citadel_server_success_cert_issuance_count_total 48.0" in metrics
    verify = citadel(data, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert "Audit chain OK" in verify.stdout


def test_supervisor_restarts_a_dead_worker(cluster: _Cluster, tmp_path: Path) -> None:
    with CitadelServe(tmp_path / "data", _args(cluster, 2)) as serve:
        assert serve.process is not None
        workers = child_pids(serve.process.pid)
        victim = max(workers)
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            alive = [p for p in child_pids(serve.process.pid) if p != victim]
            if len(alive) >= len(workers):
                break
            assert time.monotonic() < deadline, serve.log()
            time.sleep(0.1)
        time.sleep(1)  # let the replacement finish starting
        serials = _issue_concurrently(serve, cluster, accounts=4, per=2)
        assert len(set(serials)) == 8
        assert "restarting" in serve.log()


def test_serve_refuses_an_unusable_config_without_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: 127.0.0.1:0\nno_such_option: 1\n")
    result = citadel(tmp_path / "data", "serve", "--config", str(bad), "--workers", "1")
    assert result.returncode == 1
    assert "unknown key(s) no_such_option" in result.stderr
    assert "Traceback" not in result.stderr


def test_grpc_errors_from_the_process_are_clean_statuses(cluster: _Cluster, tmp_path: Path) -> None:
    with CitadelServe(tmp_path / "data", _args(cluster, 1)) as serve:
        agent = IstioAgentClient(serve.target, serve.root_pem(), token=None)
        with pytest.raises(grpc.RpcError) as caught:
            agent.csr_sign(new_workload_csr("spiffe://cluster.local/ns/a/sa/b")[1])
        agent.close()
    assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
