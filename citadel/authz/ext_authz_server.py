"""Run the ext_authz service: a standalone gRPC server, or a servicer added to another one.

Listen addresses are ``HOST:PORT`` on a loopback address (``127.0.0.1:0`` picks a free
port) or ``unix:/path``. The service is plaintext: Envoy reaches it on the same host, so a
non-loopback address is refused.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from envoy.service.auth.v3 import external_auth_pb2_grpc

from citadel.authz.enforcer import CallAuthorizer
from citadel.authz.ext_authz import AioExtAuthzServicer, ExtAuthzServicer

__all__ = ["ExtAuthzServer", "ListenAddress", "add_ext_authz_servicer", "parse_listen_address"]


@dataclass(frozen=True)
class ListenAddress:
    """A parsed listen address; ``target`` is what gRPC's ``add_*_port`` takes."""

    target: str
    unix_path: str | None = None


def parse_listen_address(value: str) -> ListenAddress:
    """Parse ``127.0.0.1:9191``, ``[::1]:9191``, ``localhost:9191`` or ``unix:/path``.

    Raises:
        ValueError: malformed, not loopback, or a Unix path that is too long.
    """
    if value.startswith("unix:"):
        path = value[len("unix:") :].removeprefix("//")
        if not path.startswith("/"):
            raise ValueError("a unix listen address needs an absolute path (unix:/path)")
        if len(path.encode()) > 107:
            raise ValueError("unix socket path is longer than 107 bytes")
        return ListenAddress(f"unix:{path}", path)
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("listen address must be HOST:PORT or unix:/path")
    bare = host.strip("[]")
    if bare != "localhost":
        try:
            loopback = ipaddress.ip_address(bare).is_loopback
        except ValueError as exc:
            raise ValueError(f"{host!r} is not an IP address") from exc
        if not loopback:
            raise ValueError("ext_authz listens on loopback or a unix socket only (plaintext)")
    return ListenAddress(value)


def add_ext_authz_servicer(
    server: Any, authorizer: CallAuthorizer, *, destination: str | None = None
) -> None:
    """Register the Check service on an existing server (``grpc.aio`` servers get the aio
    servicer, others the sync one)."""
    servicer: Any
    if isinstance(server, grpc.aio.Server):
        servicer = AioExtAuthzServicer(authorizer, destination=destination)
    else:
        servicer = ExtAuthzServicer(authorizer, destination=destination)
    external_auth_pb2_grpc.add_AuthorizationServicer_to_server(servicer, server)


class ExtAuthzServer:
    """A standalone sync gRPC server exposing only the ext_authz Check service."""

    def __init__(
        self,
        authorizer: CallAuthorizer,
        listen: str,
        *,
        destination: str | None = None,
        max_workers: int = 8,
    ) -> None:
        self._address = parse_listen_address(listen)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers))
        add_ext_authz_servicer(self._server, authorizer, destination=destination)
        self._bound: str | None = None

    @property
    def address(self) -> str:
        """The bound address (with the real port when listening on port 0)."""
        if self._bound is None:
            raise RuntimeError("server is not started")
        return self._bound

    def start(self) -> str:
        """Bind and start; returns the bound address.

        Raises:
            OSError: the address cannot be bound.
        """
        unix_path = self._address.unix_path
        if unix_path is not None:
            Path(unix_path).parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            try:
                if stat.S_ISSOCK(os.lstat(unix_path).st_mode):
                    os.unlink(unix_path)  # a stale socket from a previous run
            except FileNotFoundError:
                pass
        try:
            port = self._server.add_insecure_port(self._address.target)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {self._address.target}") from exc
        if unix_path is None and port == 0:
            raise OSError(f"cannot listen on {self._address.target}")
        self._server.start()
        if unix_path is not None:
            self._bound = self._address.target
        else:
            host = self._address.target.rpartition(":")[0]
            self._bound = f"{host}:{port}"
        return self._bound

    def stop(self, grace: float | None = 1.0) -> None:
        self._server.stop(grace).wait()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the server stops (True) or ``timeout`` passes (False)."""
        return bool(self._server.wait_for_termination(timeout))
