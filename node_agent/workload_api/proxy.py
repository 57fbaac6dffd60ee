"""The attesting accept-proxy in front of the Workload API's gRPC server.

Why a proxy: gRPC for Python never shows a servicer the socket of a call. ``context.peer()``
of a Unix-socket client is just ``unix:``, and local credentials add only the security
level; the caller's PID is not reachable. So the public socket is served here:

1. ``accept()``; read ``SO_PEERCRED`` and pin the caller with a pidfd
   (:class:`~node_agent.attestation.peer.PeerProcess`). A caller that cannot be pinned
   is disconnected at once.
2. Open a dedicated upstream connection to the gRPC server's private socket (in a 0700
   directory), its local end bound to a fresh abstract address that is registered for
   this caller in the :class:`~node_agent.workload_api.peer_registry.PeerRegistry`.
3. Copy bytes both ways, with flow control, until either side closes; then unregister
   the address *before* closing the upstream socket, and drop the pin.

The servicer maps ``context.peer()`` back to the pinned caller and attests it per call.
Attestation happens at call time (not at accept time), so a process that ``exec``s
another binary after connecting is attested as what it runs now.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket

from node_agent.attestation.errors import AttestationError
from node_agent.attestation.peer import PeerProcess
from node_agent.attestation.procfs import ProcFs
from node_agent.workload_api.peer_registry import PeerRegistry

__all__ = ["AttestingProxy"]

_log = logging.getLogger(__name__)
_BIND_ATTEMPTS = 8


class _Upstream(asyncio.Protocol):
    """The proxy's connection to the gRPC server, for one workload connection."""

    def __init__(self, link: _Link) -> None:
        self._link = link

    def data_received(self, data: bytes) -> None:
        self._link.to_client(data)

    def pause_writing(self) -> None:
        self._link.pause_client()

    def resume_writing(self) -> None:
        self._link.resume_client()

    def connection_lost(self, exc: Exception | None) -> None:
        self._link.upstream_lost()


class _Link(asyncio.Protocol):
    """One accepted workload connection and its upstream twin."""

    def __init__(self, proxy: AttestingProxy) -> None:
        self._proxy = proxy
        self._client: asyncio.Transport | None = None
        self._upstream: asyncio.Transport | None = None
        self._peer: PeerProcess | None = None
        self._address: str | None = None
        self._pending: list[bytes] = []
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # --- client side ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._client = transport
        transport.pause_reading()
        if not self._proxy._admit(self):
            _log.warning("workload API: connection limit reached; refusing a connection")
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        try:
            self._peer = PeerProcess.from_socket(sock, self._proxy.procfs)
        except AttestationError as exc:
            _log.info("workload API: refusing a caller that cannot be pinned: %s", exc.message)
            transport.abort()
            return
        self._task = asyncio.get_running_loop().create_task(self._open_upstream())

    def data_received(self, data: bytes) -> None:
        if self._upstream is not None:
            self._upstream.write(data)
        else:
            self._pending.append(data)

    def pause_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._teardown()

    # --- upstream side -------------------------------------------------------------------
    async def _open_upstream(self) -> None:
        assert self._peer is not None and self._client is not None
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            self._address = self._bind(sock)
            self._proxy.registry.register(self._address, self._peer)
            await loop.sock_connect(sock, self._proxy.upstream_path)
            transport, _ = await loop.create_unix_connection(lambda: _Upstream(self), sock=sock)
        except BaseException as exc:
            self._unregister()  # before the socket (and its address) is released
            sock.close()
            if not isinstance(exc, OSError):
                raise
            _log.error("workload API: cannot reach the internal gRPC socket: %s", exc.strerror)
            self._client.abort()
            return
        assert isinstance(transport, asyncio.Transport)
        self._upstream = transport
        if self._closed:  # the workload hung up while we were connecting
            self._release_upstream()
            return
        for chunk in self._pending:
            transport.write(chunk)
        self._pending.clear()
        self._client.resume_reading()

    def _unregister(self) -> None:
        if self._address is not None:
            self._proxy.registry.unregister(self._address)
            self._address = None

    def _release_upstream(self) -> None:
        self._unregister()
        if self._upstream is not None:
            self._upstream.close()

    def _bind(self, sock: socket.socket) -> str:
        for _ in range(_BIND_ATTEMPTS):
            address = self._proxy.registry.new_address()
            try:
                sock.bind("\0" + address)
                return address
            except OSError as exc:  # someone squats on the name: take the next one
                if exc.errno != errno.EADDRINUSE:
                    raise
        raise OSError(errno.EADDRINUSE, "no free abstract address for the upstream socket")

    def to_client(self, data: bytes) -> None:
        if self._client is not None:
            self._client.write(data)

    def pause_client(self) -> None:
        if self._client is not None and not self._closed:
            self._client.pause_reading()

    def resume_client(self) -> None:
        if self._client is not None and not self._closed:
            self._client.resume_reading()

    def upstream_lost(self) -> None:
        if self._client is not None:
            self._client.close()  # flushes what the server already sent
        self._teardown()

    # --- shared --------------------------------------------------------------------------
    def abort(self) -> None:
        if self._client is not None:
            self._client.abort()
        self._teardown()

    def _teardown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._release_upstream()  # unregisters before the socket is released
        if self._peer is not None:
            self._peer.close()
        self._proxy._release(self)


class AttestingProxy:
    """Accepts workload connections on a listening socket and relays them to gRPC."""

    def __init__(
        self,
        *,
        upstream_path: str,
        registry: PeerRegistry,
        procfs: ProcFs,
        max_connections: int = 1024,
    ) -> None:
        if max_connections <= 0:
            raise ValueError("max_connections must be positive")
        self.upstream_path = upstream_path
        self.registry = registry
        self.procfs = procfs
        self._max_connections = max_connections
        self._links: set[_Link] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self, listening: socket.socket) -> None:
        """Serve ``listening`` (a bound, listening AF_UNIX socket; the proxy owns it now)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Link(self), sock=listening)

    async def close(self) -> None:
        """Stop accepting and drop every open connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    @property
    def connection_count(self) -> int:
        return len(self._links)

    def _admit(self, link: _Link) -> bool:
        if len(self._links) >= self._max_connections:
            return False
        self._links.add(link)
        return True

    def _release(self, link: _Link) -> None:
        self._links.discard(link)
