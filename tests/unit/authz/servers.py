"""Loopback servers for the authz tests: TLS gRPC (sync and aio), JWKS over HTTP, a recorder."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import grpc.aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from citadel.authz.enforcer import AccessRequest, AccessResult, CallAuthorizer
from citadel.authz.grpc_interceptor import (
    AioAuthzServerInterceptor,
    AuthzServerInterceptor,
    current_access,
)
from tests.unit.authz.pki import Authority, Issued

__all__ = [
    "HEALTH_CHECK",
    "HEALTH_WATCH",
    "WHO",
    "WHO_STREAM",
    "JwksHttpServer",
    "Recorder",
    "health_check",
    "secure_channel",
    "tls_grpc_server",
]

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
HEALTH_WATCH = "/grpc.health.v1.Health/Watch"
WHO = "/test.Echo/Who"
WHO_STREAM = "/test.Echo/WhoStream"


def _who() -> bytes:
    """What the handler sees of the caller (via current_access)."""
    access = current_access()
    if access is None:
        return b"{}"
    token = access.token
    return json.dumps(
        {
            "principal": access.principal,
            "request_principal": token.request_principal if token else None,
        }
    ).encode()


def _echo_sync() -> grpc.GenericRpcHandler:
    def who_stream(request: bytes, context: Any) -> Iterator[bytes]:
        yield _who()
        yield _who()

    return grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Who": grpc.unary_unary_rpc_method_handler(lambda request, context: _who()),
            "WhoStream": grpc.unary_stream_rpc_method_handler(who_stream),
        },
    )


def _echo_aio() -> grpc.GenericRpcHandler:
    async def who(request: bytes, context: Any) -> bytes:
        return _who()

    async def who_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield _who()
        yield _who()

    return grpc.method_handlers_generic_handler(
        "test.Echo",
        {
            "Who": grpc.unary_unary_rpc_method_handler(who),
            "WhoStream": grpc.unary_stream_rpc_method_handler(who_stream),
        },
    )


class Recorder:
    """Delegates to a real authorizer and keeps every result (to assert the exact kind)."""

    def __init__(self, inner: CallAuthorizer) -> None:
        self.inner = inner
        self.results: list[AccessResult] = []
        self.requests: list[AccessRequest] = []

    def check(self, request: AccessRequest) -> AccessResult:
        result = self.inner.check(request)
        self.requests.append(request)
        self.results.append(result)
        return result

    @property
    def last(self) -> AccessResult:
        assert self.results, "the authorizer was never called"
        return self.results[-1]

    @property
    def last_kind(self) -> str | None:
        error = self.last.error
        return error.kind if error is not None else None


class JwksHttpServer:
    """Serves ``body`` with ``status`` after ``delay`` seconds on 127.0.0.1; counts requests."""

    def __init__(self, body: bytes = b'{"keys": []}', status: int = 200) -> None:
        self.body = body
        self.status = status
        self.delay = 0.0
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests += 1
                time.sleep(outer.delay)
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args: Any) -> None:
                return

        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/jwks.json"

    def __enter__(self) -> JwksHttpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _server_credentials(
    server_leaf: Issued, roots: bytes, require_client_auth: bool
) -> grpc.ServerCredentials:
    return grpc.ssl_server_credentials(
        [(server_leaf.key_pem, server_leaf.cert_pem)],
        root_certificates=roots,
        require_client_auth=require_client_auth,
    )


@contextmanager
def _sync_server(
    authorizer: CallAuthorizer, creds: grpc.ServerCredentials, options: dict[str, Any]
) -> Iterator[int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        interceptors=[AuthzServerInterceptor(authorizer, **options)],
    )
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_generic_rpc_handlers((_echo_sync(),))
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:
        yield port
    finally:
        server.stop(None).wait(5)


@contextmanager
def _aio_server(
    authorizer: CallAuthorizer, creds: grpc.ServerCredentials, options: dict[str, Any]
) -> Iterator[int]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server(interceptors=[AioAuthzServerInterceptor(authorizer, **options)])
        health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
        server.add_generic_rpc_handlers((_echo_aio(),))
        port = server.add_secure_port("127.0.0.1:0", creds)
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=10)
    try:
        yield port
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(None), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


@contextmanager
def tls_grpc_server(
    kind: str,
    authorizer: CallAuthorizer,
    *,
    server_leaf: Issued,
    roots: bytes,
    require_client_auth: bool = True,
    exempt: tuple[str, ...] = (),
    destination: str | None = None,
) -> Iterator[int]:
    """Health and echo services behind the authz interceptor (``kind``: sync or aio)."""
    creds = _server_credentials(server_leaf, roots, require_client_auth)
    factory = _sync_server if kind == "sync" else _aio_server
    options = {"exempt_methods": exempt, "destination": destination}
    with factory(authorizer, creds, options) as port:
        yield port


@contextmanager
def secure_channel(port: int, ca: Authority, client: Issued | None) -> Iterator[grpc.Channel]:
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem,
        private_key=client.key_pem if client else None,
        certificate_chain=client.cert_pem if client else None,
    )
    channel = grpc.secure_channel(
        f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "localhost")]
    )
    try:
        yield channel
    finally:
        channel.close()


def health_check(
    channel: grpc.Channel, metadata: tuple[tuple[str, str], ...] = ()
) -> health_pb2.HealthCheckResponse:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(), metadata=metadata, timeout=10)
