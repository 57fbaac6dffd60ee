"""The gRPC server: CSR API, health checking and reflection, over TLS.

Two TLS listeners share one server: ``listen`` (no client certificate requested; callers
bring tokens) and, optionally, ``mtls_listen`` (a client certificate chaining to our roots
is required). Both present the CA-issued serving certificate, rotated in place.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from datetime import timedelta

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from citadel.server.config import ListenAddress, ServerConfig
from citadel.server.errors import ServerConfigError
from citadel.server.read_deadline import DEFAULT_REQUEST_READ_TIMEOUT, ReadDeadlineInterceptor
from citadel.server.servicer import SERVICE_NAME, IstioCertificateServicer, add_to_server
from citadel.server.serving_cert import ServingCertificate

__all__ = ["BoundPorts", "CsrServer"]

_log = logging.getLogger(__name__)
_HEALTH_SERVICE = "grpc.health.v1.Health"


@dataclass(frozen=True, slots=True)
class BoundPorts:
    port: int
    mtls_port: int | None


class CsrServer:
    """One gRPC server process's listeners and services.

    Args:
        so_reuseport: let several processes bind the same port (multi-worker mode).
        ports: override the configured ports (the supervisor's reserved ports).
    """

    def __init__(
        self,
        *,
        config: ServerConfig,
        servicer: IstioCertificateServicer,
        serving: ServingCertificate,
        so_reuseport: bool = False,
        ports: BoundPorts | None = None,
        extra_handlers: Sequence[grpc.GenericRpcHandler] = (),
    ) -> None:
        self._config = config
        self._serving = serving
        self._ports = ports
        self._executor = futures.ThreadPoolExecutor(
            max_workers=config.threads, thread_name_prefix="citadel-grpc"
        )
        # Stalled clients: each call must deliver its request within a deadline (else it is
        # cancelled and its thread freed), and one connection may hold at most half the
        # threads, so a single client cannot take them all even for that long.
        self.read_deadlines = ReadDeadlineInterceptor(DEFAULT_REQUEST_READ_TIMEOUT)
        self._server = grpc.server(
            self._executor,
            interceptors=[self.read_deadlines],
            options=[
                ("grpc.max_receive_message_length", config.max_receive_bytes),
                ("grpc.max_send_message_length", 4 * 1024 * 1024),
                ("grpc.so_reuseport", 1 if so_reuseport else 0),
                ("grpc.max_concurrent_streams", max(1, config.threads // 2)),
            ],
            maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        )
        add_to_server(servicer, self._server)
        self._server.add_generic_rpc_handlers(tuple(extra_handlers))
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, _HEALTH_SERVICE, reflection.SERVICE_NAME), self._server
        )
        self._bound: BoundPorts | None = None

    @property
    def health(self) -> health.HealthServicer:
        return self._health

    def _bind(self, address: str, port: int | None, *, require_client_auth: bool) -> int:
        listen = ListenAddress.parse(address)
        credentials = self._serving.server_credentials(require_client_auth=require_client_auth)
        target = listen.grpc_target(port)
        bound = int(self._server.add_secure_port(target, credentials))
        if bound == 0:
            raise ServerConfigError(f"cannot listen on {target}")
        return bound

    def start(self) -> BoundPorts:
        """Bind, start serving and report the bound ports.

        Raises:
            ServerConfigError: an address cannot be bound.
            ServingCertificateError: no serving certificate could be issued.
        """
        config = self._config
        wanted = self._ports
        port = self._bind(config.listen, wanted.port if wanted else None, require_client_auth=False)
        mtls_port = None
        if config.mtls_listen is not None:
            mtls_port = self._bind(
                config.mtls_listen,
                wanted.mtls_port if wanted else None,
                require_client_auth=True,
            )
        self._server.start()
        for service in ("", SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)
        self._bound = BoundPorts(port=port, mtls_port=mtls_port)
        _log.info(
            "CSR API listening on port %d%s",
            port,
            f" (mTLS port {mtls_port})" if mtls_port is not None else "",
        )
        return self._bound

    def stop(self, grace: timedelta | None = None) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace``, then stop."""
        seconds = (grace if grace is not None else self._config.grace).total_seconds()
        self._health.enter_graceful_shutdown()
        self._server.stop(seconds).wait(seconds + 5)
        self._executor.shutdown(wait=False)
        self.read_deadlines.watchdog.close()

    def wait(self, timeout: float | None = None) -> bool:
        return bool(self._server.wait_for_termination(timeout))
