"""One server worker process (multi-worker mode): open the CA, serve on the shared port,
report readiness to the supervisor, stop gracefully on SIGTERM."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from multiprocessing.connection import Connection

from citadel.ca.config import CaConfig
from citadel.ca.context import open_ca
from citadel.errors import CitadelError
from citadel.server.ca_server import CaServer
from citadel.server.config import ServerConfig
from citadel.server.grpc_server import BoundPorts
from citadel.server.logging_setup import configure_server_logging
from citadel.server.replica import ReplicaServices
from citadel.server.shutdown import StopSignal

__all__ = ["WorkerSpec", "worker_main"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class WorkerSpec:
    server: ServerConfig
    ca: CaConfig
    index: int
    count: int
    ports: BoundPorts
    log_level: int


def worker_main(spec: WorkerSpec, ready: Connection) -> None:
    """The worker's entry point (runs in a fresh, spawned interpreter)."""
    configure_server_logging(spec.log_level, worker=spec.index)
    stop = StopSignal().install()
    try:
        # The supervisor installed any plug-in CA directory before starting the workers;
        # each worker's lifecycle watches it (installs take the rotation lock, one at a time).
        ca = open_ca(spec.ca)
    except CitadelError as exc:
        ready.send(("failed", f"cannot open the CA: {exc.message}"))
        sys.exit(1)
    try:
        lock_file = spec.ca.data_dir / "issuance.lock" if spec.ca.uses_default_database else None
        server = CaServer(
            ca=ca,
            config=spec.server,
            worker_count=spec.count,
            so_reuseport=True,
            ports=spec.ports,
            write_lock_file=lock_file,
        )
        services = ReplicaServices(
            ca=ca, config=spec.server, metrics=server.metrics, server_issuer=server.issuer
        )
        server.attach_lifecycle(services.lifecycle)
        server.start()
        services.start()
    except CitadelError as exc:
        ca.close()
        ready.send(("failed", exc.message))
        sys.exit(1)
    ready.send(("ready", os.getpid()))
    ready.close()
    stop.wait()
    _log.info("worker %d stopping (grace %s)", spec.index, spec.server.grace)
    try:
        services.stop()
        server.stop()
    finally:
        ca.close()
    sys.exit(0)
