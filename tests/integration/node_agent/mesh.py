"""Building blocks of the two-sidecar mesh used by the integration tests.

client app -> client Envoy (outbound, plain HTTP) -> mTLS -> server Envoy (inbound) -> app.
Each Envoy gets its certificates from its own ``citadel-agent`` over SDS on a Unix socket;
the agents get theirs from the real ``citadel serve``. The authz Envoy tests
(tests/integration/authz_envoy) build their mesh from these helpers too.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509

from tests.peers.citadel_server import CitadelServer

__all__ = [
    "App",
    "HandshakeFailed",
    "SeenRequest",
    "agent_config",
    "get_via",
    "handshake",
    "wait_for",
]


def agent_config(
    base: Path, name: str, spiffe_id: str, ca: CitadelServer, token: str, **extra: Any
) -> dict[str, Any]:
    """A ``citadel-agent`` configuration: join token, 30 s certificates renewed at ratio
    0.12, SDS on ``base/name/sds.sock``, files in ``base/name/out``; ``extra`` overrides."""
    token_file = base / name / "join-token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(token)
    token_file.chmod(0o600)
    config: dict[str, Any] = {
        "spiffe_id": spiffe_id,
        "ttl_seconds": 30,
        "ca": {
            "address": ca.address,
            "mtls_address": ca.mtls_address,
            "server_name": "localhost",
            "root_bundle": str(base / "roots.pem"),
            "timeout_seconds": 3,
            "credential": {"type": "join_token", "path": str(token_file)},
        },
        "rotation": {"ratio": 0.12, "jitter": 0.01},
        "backoff": {"initial_seconds": 0.5, "max_seconds": 2},
        "sds": {"socket_path": str(base / name / "sds.sock")},
        "status": {"port": 0},
        "output_dir": str(base / name / "out"),
    }
    config.update(extra)
    return config


@dataclass(frozen=True)
class SeenRequest:
    """A request as the app received it (header names lowercase)."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)


class App:
    """A tiny HTTP app on 127.0.0.1: answers 200 with the identity Envoy forwarded.

    Every request it receives is appended to :attr:`seen`. With ``keep_alive`` it speaks
    HTTP/1.1 and keeps Envoy's upstream connections open (as a real app would).
    """

    def __init__(self, *, keep_alive: bool = False) -> None:
        seen: list[SeenRequest] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"
            # Headers and body are two writes: without TCP_NODELAY the body of a kept-alive
            # response waits for a delayed ACK (~40 ms).
            disable_nagle_algorithm = keep_alive

            def do_GET(self) -> None:
                seen.append(
                    SeenRequest("GET", self.path, {k.lower(): v for k, v in self.headers.items()})
                )
                xfcc = self.headers.get("x-forwarded-client-cert", "")
                body = f"hello from app; xfcc={xfcc}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


def get_via(
    port: int,
    path: str = "/",
    *,
    timeout: float = 5.0,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """One HTTP request on a new connection to ``127.0.0.1:port``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        reply = connection.getresponse()
        return reply.status, reply.read().decode("utf-8", "replace")
    finally:
        connection.close()


class HandshakeFailed(Exception):
    pass


@dataclass(frozen=True)
class Peer:
    serial_hex: str
    uri_sans: tuple[str, ...]


def handshake(
    port: int,
    *,
    roots: Path,
    client_cert: tuple[Path, Path] | None = None,
    max_tls12: bool = False,
    timeout: float = 3.0,
) -> Peer:
    """A fresh TLS handshake with ``127.0.0.1:port``; returns the server certificate's facts.

    With ``max_tls12`` a rejected client certificate fails the handshake itself (TLS 1.3
    reports it only on the first read).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(roots))
    if max_tls12:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        if client_cert is not None:
            # The agent may be replacing these files right now (key, then chain).
            context.load_cert_chain(str(client_cert[0]), str(client_cert[1]))
        with (
            socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw,
            context.wrap_socket(raw) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
            if client_cert is not None:
                tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                first = tls.recv(64)
                if not first:
                    raise HandshakeFailed("connection closed after the handshake")
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        raise HandshakeFailed(str(exc)) from exc
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    return Peer(
        format(cert.serial_number, "x"),
        tuple(sans.value.get_values_for_type(x509.UniformResourceIdentifier)),
    )


def wait_for(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(HandshakeFailed, OSError, ssl.SSLError):
            if predicate():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
