"""The ``/metrics`` endpoint (Prometheus text format) on its own port."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from citadel.server.config import ListenAddress
from citadel.server.errors import ServerConfigError

__all__ = ["MetricsEndpoint", "multiprocess_registry", "start_metrics_endpoint"]

_log = logging.getLogger(__name__)


@dataclass
class MetricsEndpoint:
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def multiprocess_registry(directory: str) -> CollectorRegistry:
    """A registry that aggregates every worker's metric files in ``directory``."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def start_metrics_endpoint(address: str, registry: CollectorRegistry) -> MetricsEndpoint:
    """Serve ``registry`` at ``http://<address>/metrics``.

    Raises:
        ServerConfigError: the address cannot be bound.
    """
    listen = ListenAddress.parse(address)
    try:
        server, thread = start_http_server(listen.port, addr=listen.host, registry=registry)
    except OSError as exc:
        raise ServerConfigError(f"cannot serve metrics on {address}: {exc.strerror}") from exc
    port = int(server.server_address[1])
    _log.info("metrics on http://%s/metrics", listen.grpc_target(port))
    return MetricsEndpoint(port, server, thread)
