"""Building blocks of the two-sidecar mesh used by the integration tests.

client app -> client Envoy (outbound, plain HTTP) -> mTLS -> server Envoy (inbound) -> app.
Each Envoy gets its certificates from its own ``citadel-agent`` over SDS on a Unix socket;
the agents get theirs from the real ``citadel serve``.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509

__all__ = [
    "App",
    "HandshakeFailed",
    "get_via",
    "handshake",
    "wait_for",
]


class App:
    """A tiny HTTP app on 127.0.0.1: answers 200 with the identity Envoy forwarded."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
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


def get_via(port: int, path: str = "/", *, timeout: float = 5.0) -> tuple[int, str]:
    """One HTTP request on a new connection to ``127.0.0.1:port``."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
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
