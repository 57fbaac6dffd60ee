"""The Workload API endpoint: a grpc.aio server behind the attesting proxy.

``SPIFFE_ENDPOINT_SOCKET`` for workloads is :attr:`WorkloadApiServer.endpoint`
(``unix:///path/to/socket``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc

from citadel._proto import workload_pb2_grpc
from citadel.identity.clock import Clock
from citadel.identity.jwt_svid import DEFAULT_LEEWAY, MAX_JWT_SVID_BYTES
from node_agent.attestation.procfs import ProcFs
from node_agent.attestation.unix import UnixAttestor
from node_agent.errors import ConfigError
from node_agent.workload_api.peer_registry import PeerRegistry
from node_agent.workload_api.proxy import AttestingProxy
from node_agent.workload_api.servicer import WorkloadApiServicer, WorkloadAttestor
from node_agent.workload_api.socket_dir import (
    MAX_SOCKET_PATH_BYTES,
    bind_public_socket,
    make_internal_dir,
    prepare_socket_dir,
    remove_quietly,
)
from node_agent.workload_api.source import IdentitySource

__all__ = ["WorkloadApiConfig", "WorkloadApiServer"]

_log = logging.getLogger(__name__)

ENDPOINT_ENV = "SPIFFE_ENDPOINT_SOCKET"
_MIN_REQUEST_BYTES = MAX_JWT_SVID_BYTES + 8 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkloadApiConfig:
    """Where and how the Workload API listens.

    Attributes:
        socket_path: absolute path of the public socket (at most 107 bytes).
        socket_group: gid whose members may reach the socket (directory 0750, socket
            0660); None keeps both private to the agent's user (0700 / 0600).
        max_connections: concurrent workload connections; more are refused.
        jwt_leeway: clock skew tolerated when validating JWT-SVIDs.
        max_request_bytes: the largest request message accepted.
    """

    socket_path: Path
    socket_group: int | None = None
    max_connections: int = 1024
    jwt_leeway: timedelta = DEFAULT_LEEWAY
    max_request_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        path = Path(self.socket_path)
        if not path.is_absolute():
            raise ConfigError(f"workload API socket path {path} must be absolute")
        if len(str(path).encode()) > MAX_SOCKET_PATH_BYTES:
            raise ConfigError(
                f"workload API socket path is longer than {MAX_SOCKET_PATH_BYTES} bytes"
            )
        if self.socket_group is not None and self.socket_group < 0:
            raise ConfigError("workload API socket group must be a gid")
        if self.max_connections <= 0:
            raise ConfigError("workload API max_connections must be positive")
        if self.jwt_leeway < timedelta(0):
            raise ConfigError("workload API JWT leeway must not be negative")
        if self.max_request_bytes < _MIN_REQUEST_BYTES:
            raise ConfigError(
                f"workload API max_request_bytes must be at least {_MIN_REQUEST_BYTES}"
            )


class WorkloadApiServer:
    """Serves the SPIFFE Workload API from an :class:`IdentitySource`."""

    def __init__(
        self,
        config: WorkloadApiConfig,
        source: IdentitySource,
        *,
        clock: Clock,
        attestor: WorkloadAttestor | None = None,
        procfs: ProcFs | None = None,
    ) -> None:
        self._config = config
        self._procfs = procfs if procfs is not None else ProcFs()
        self._registry = PeerRegistry()
        self._servicer = WorkloadApiServicer(
            source=source,
            attestor=attestor if attestor is not None else UnixAttestor(procfs=self._procfs),
            registry=self._registry,
            clock=clock,
            jwt_leeway=config.jwt_leeway,
        )
        self._grpc: grpc.aio.Server | None = None
        self._proxy: AttestingProxy | None = None
        self._internal: Path | None = None
        self._started = False

    @property
    def endpoint(self) -> str:
        """The value of ``SPIFFE_ENDPOINT_SOCKET`` for workloads: ``unix:///path``."""
        return f"unix://{self._config.socket_path}"

    @property
    def registry(self) -> PeerRegistry:
        return self._registry

    @property
    def connection_count(self) -> int:
        return self._proxy.connection_count if self._proxy is not None else 0

    async def start(self) -> None:
        """Bind both sockets and start serving.

        Raises:
            SocketPathError / SocketInUseError: the socket cannot be used.
        """
        if self._started:
            raise RuntimeError("a workload API server can be started only once")
        self._started = True
        path = Path(self._config.socket_path)
        prepare_socket_dir(path.parent, group=self._config.socket_group)
        internal = make_internal_dir(path.parent)
        self._internal = internal
        try:
            server = grpc.aio.server(
                options=[("grpc.max_receive_message_length", self._config.max_request_bytes)]
            )
            workload_pb2_grpc.add_SpiffeWorkloadAPIServicer_to_server(self._servicer, server)
            server.add_insecure_port(f"unix:{internal}")
            await server.start()
            self._grpc = server
            listening = bind_public_socket(path, group=self._config.socket_group)
            self._proxy = AttestingProxy(
                upstream_path=str(internal),
                registry=self._registry,
                procfs=self._procfs,
                max_connections=self._config.max_connections,
            )
            await self._proxy.start(listening)
        except BaseException:
            await self.stop(grace=None)
            raise
        _log.info("workload API listening on %s", path)

    async def stop(self, grace: float | None = 1.0) -> None:
        """End open streams, stop accepting, and remove the sockets (idempotent)."""
        self._servicer.close()
        if self._grpc is not None:
            await asyncio.sleep(0)  # let the streams see the close and finish
        if self._proxy is not None:
            await self._proxy.close()
            self._proxy = None
            remove_quietly(Path(self._config.socket_path))
        if self._grpc is not None:
            await self._grpc.stop(grace)
            self._grpc = None
        if self._internal is not None:
            remove_quietly(self._internal.parent)
            self._internal = None
