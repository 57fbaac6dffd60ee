"""Multi-worker mode: N server processes share the listening ports (SO_REUSEPORT).

The supervisor initialises the CA once, reserves the ports (so ``:0`` means one port for all
workers), starts the workers in fresh interpreters, serves the aggregated ``/metrics``
(prometheus-client multi-process mode), writes the ready file when every worker serves,
restarts a worker that dies, and on SIGTERM stops them all gracefully.

Each worker opens the repository itself; SQLite (WAL, BEGIN IMMEDIATE) or PostgreSQL
serialises their writes, so serials stay unique and the audit chain stays linked.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from citadel.ca.config import CaConfig
from citadel.server.config import ListenAddress, ServerConfig
from citadel.server.errors import ServerConfigError, ServerError
from citadel.server.grpc_server import BoundPorts
from citadel.server.metrics_http import (
    MetricsEndpoint,
    multiprocess_registry,
    start_metrics_endpoint,
)
from citadel.server.ready_file import remove_ready_file, write_ready_file
from citadel.server.shutdown import StopSignal
from citadel.server.worker import WorkerSpec, worker_main

__all__ = ["PROMETHEUS_DIR_ENV", "Supervisor", "restart_delay", "run_supervisor"]

_log = logging.getLogger(__name__)
PROMETHEUS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
READY_TIMEOUT = 60.0
MAX_RESTART_DELAY = 30.0


def restart_delay(recent_failures: int) -> float:
    """Seconds to wait before restarting a worker that failed ``recent_failures`` times."""
    return float(min(MAX_RESTART_DELAY, 0.5 * (2 ** max(0, recent_failures - 1))))


def _reserve(address: str) -> socket.socket:
    """Bind (without listening) a SO_REUSEPORT socket, fixing the port for every worker."""
    listen = ListenAddress.parse(address)
    infos = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)
    family, kind, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(sockaddr)
    except OSError as exc:
        sock.close()
        raise ServerConfigError(f"cannot listen on {address}: {exc.strerror}") from exc
    return sock


@dataclass
class _Worker:
    index: int
    process: BaseProcess
    ready: Connection
    started_at: float
    failures: int = 0


@dataclass
class Supervisor:
    server_config: ServerConfig
    ca_config: CaConfig
    log_level: int = logging.INFO
    _workers: dict[int, _Worker] = field(default_factory=dict)
    _stop: StopSignal = field(default_factory=StopSignal)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT. Returns the process exit code."""
        self._stop.install()
        config = self.server_config
        reserved = [_reserve(config.listen)]
        if config.mtls_listen is not None:
            reserved.append(_reserve(config.mtls_listen))
        ports = BoundPorts(
            port=int(reserved[0].getsockname()[1]),
            mtls_port=int(reserved[1].getsockname()[1]) if len(reserved) > 1 else None,
        )
        metrics_dir = tempfile.mkdtemp(prefix="citadel-metrics-")
        os.environ[PROMETHEUS_DIR_ENV] = metrics_dir
        context = multiprocessing.get_context("spawn")
        endpoint: MetricsEndpoint | None = None
        try:
            if config.metrics_listen is not None:
                endpoint = start_metrics_endpoint(
                    config.metrics_listen, multiprocess_registry(metrics_dir)
                )
            for index in range(config.workers):
                self._spawn(context, index, ports)
            if not self._await_ready():
                return 1
            if config.ready_file is not None:
                write_ready_file(
                    config.ready_file,
                    port=ports.port,
                    mtls_port=ports.mtls_port,
                    metrics_port=endpoint.port if endpoint else None,
                    pid=os.getpid(),
                    workers=config.workers,
                )
            _log.info("serving with %d workers on port %d", config.workers, ports.port)
            self._supervise(context, ports, metrics_dir)
            return self._shutdown()
        finally:
            if endpoint is not None:
                endpoint.close()
            for sock in reserved:
                sock.close()
            if config.ready_file is not None:
                remove_ready_file(config.ready_file, pid=os.getpid())
            shutil.rmtree(metrics_dir, ignore_errors=True)

    # --- workers --------------------------------------------------------------------------
    def _spawn(
        self, context: multiprocessing.context.SpawnContext, index: int, ports: BoundPorts
    ) -> _Worker:
        parent, child = context.Pipe(duplex=False)
        spec = WorkerSpec(
            server=self.server_config,
            ca=self.ca_config,
            index=index,
            count=self.server_config.workers,
            ports=ports,
            log_level=self.log_level,
        )
        process = context.Process(
            target=worker_main, args=(spec, child), name=f"citadel-worker-{index}"
        )
        process.start()
        child.close()
        previous = self._workers.get(index)
        worker = _Worker(
            index, process, parent, time.monotonic(), previous.failures if previous else 0
        )
        self._workers[index] = worker
        return worker

    def _await_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        for worker in self._workers.values():
            remaining = deadline - time.monotonic()
            if self._stop.event.is_set() or not worker.ready.poll(max(0.0, remaining)):
                _log.error("worker %d did not become ready", worker.index)
                self._shutdown()
                return False
            try:
                status, detail = worker.ready.recv()
            except EOFError:
                status, detail = "failed", "exited during start-up"
            if status != "ready":
                _log.error("worker %d failed to start: %s", worker.index, detail)
                self._shutdown()
                return False
        return True

    def _supervise(
        self, context: multiprocessing.context.SpawnContext, ports: BoundPorts, metrics_dir: str
    ) -> None:
        from prometheus_client import multiprocess

        while not self._stop.wait(0.2):
            for index, worker in list(self._workers.items()):
                if worker.process.is_alive():
                    continue
                code = worker.process.exitcode
                pid = worker.process.pid
                if pid is not None:
                    multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
                lived = time.monotonic() - worker.started_at
                failures = 1 if lived > 60 else worker.failures + 1
                delay = restart_delay(failures)
                _log.error(
                    "worker %d (pid %s) exited with %s; restarting in %.1fs",
                    index,
                    pid,
                    code,
                    delay,
                )
                if self._stop.wait(delay):
                    return
                replacement = self._spawn(context, index, ports)
                replacement.failures = failures

    def _shutdown(self) -> int:
        grace = self.server_config.grace.total_seconds()
        for worker in self._workers.values():
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace + 10
        codes: list[int | None] = []
        for worker in self._workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                _log.error("worker %d did not stop in time; killing it", worker.index)
                worker.process.kill()
                worker.process.join(5)
            codes.append(worker.process.exitcode)
        return 0 if all(code == 0 for code in codes) else 1


def run_supervisor(server_config: ServerConfig, ca_config: CaConfig, log_level: int) -> int:
    if server_config.workers < 2:
        raise ServerError("the supervisor is for two or more workers")
    return Supervisor(server_config, ca_config, log_level).run()
