"""Slow or stalled clients do not starve the others.

A hostile client opens CSR calls and never sends their request message (headers only), and
opens TCP connections that never finish (or never start) the TLS handshake. The CA
(``citadel serve``, 16 worker threads) bounds both: a connection may carry at most half the
threads' worth of concurrent streams, and a call whose message has not arrived within the
read deadline (5 s) is cancelled, which frees its thread. Honest clients keep getting
certificates: at once while one connection stalls, and within the read deadline (plus a
margin) while stalls from many connections hold every thread.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from citadel.server.read_deadline import DEFAULT_REQUEST_READ_TIMEOUT
from tests.integration.server.serve_process import CitadelServe
from tests.resilience.harness import MtlsSigner, mint

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

METHOD = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
READ_TIMEOUT_S = DEFAULT_REQUEST_READ_TIMEOUT.total_seconds()
ARGS = [
    "--workers", "1", "--listen", "127.0.0.1:0", "--mtls-listen", "127.0.0.1:0",
    "--metrics-listen", "off", "--rate", "0", "--identity-rate", "0", "--grace", "1s",
]  # fmt: skip


class StalledCalls:
    """``streams`` CSR calls over ``connections`` connections, each sending headers only."""

    def __init__(self, port: int, root_pem: bytes, *, connections: int, streams: int) -> None:
        self._release = threading.Event()
        credentials = grpc.ssl_channel_credentials(root_certificates=root_pem)
        self.channels = [
            grpc.secure_channel(
                f"127.0.0.1:{port}",
                credentials,
                options=[
                    ("grpc.ssl_target_name_override", "localhost"),
                    ("grpc.use_local_subchannel_pool", 1),  # one connection per channel
                ],
            )
            for _ in range(connections)
        ]
        self.started = time.monotonic()
        self.calls: list[Any] = []
        for index in range(streams):
            call = self.channels[index % connections].stream_unary(
                METHOD, request_serializer=bytes, response_deserializer=bytes
            )
            self.calls.append(call.future(self._never(), metadata=(("authorization", "x"),)))

    def _never(self) -> Iterator[bytes]:
        self._release.wait(60)
        return
        yield b""  # a generator that never produces a message

    def ended(self) -> list[grpc.StatusCode]:
        return [call.code() for call in self.calls if call.done()]

    def close(self) -> None:
        self._release.set()
        for call in self.calls:
            call.cancel()
        for channel in self.channels:
            channel.close()


@contextlib.contextmanager
def idle_sockets(port: int, count: int, *, partial_hello: bool) -> Iterator[None]:
    """TCP connections that never complete a TLS handshake (silent, or a cut ClientHello)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            if partial_hello:
                sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # then nothing
            sockets.append(sock)
        yield
    finally:
        for sock in sockets:
            sock.close()


def _timed_signatures(signers: list[MtlsSigner], each: int) -> list[float]:
    def run(signer: MtlsSigner) -> list[float]:
        spent = []
        for _ in range(each):
            started = time.monotonic()
            signer.sign()  # raises on any refusal: none is expected
            spent.append(time.monotonic() - started)
        return spent

    with ThreadPoolExecutor(len(signers)) as pool:
        return [t for times in pool.map(run, signers) for t in times]


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[CitadelServe, list[MtlsSigner]]]:
    base = tmp_path_factory.mktemp("stalled")
    with CitadelServe(base / "data", ARGS) as serve:
        root = serve.root_pem()
        target = f"127.0.0.1:{serve.ready['mtls_port']}"
        signers = []
        for i in range(4):
            spiffe_id = f"spiffe://cluster.local/ns/honest/sa/c{i}"
            signers.append(
                MtlsSigner(target, root, spiffe_id, *mint(base / "data", spiffe_id, base / f"m{i}"))
            )
        _timed_signatures(signers, 1)  # connected and warm
        try:
            yield serve, signers
        finally:
            for signer in signers:
                signer.close()


def test_one_connection_full_of_stalled_streams_leaves_the_others_served_at_once(
    served: tuple[CitadelServe, list[MtlsSigner]],
) -> None:
    serve, signers = served
    port = int(serve.ready["port"])
    stalled = StalledCalls(port, serve.root_pem(), connections=1, streams=64)
    try:
        with (
            idle_sockets(port, 40, partial_hello=False),
            idle_sockets(port, 20, partial_hello=True),
        ):
            time.sleep(0.5)  # the stalls hold their threads now
            latencies = _timed_signatures(signers, 5)
        assert max(latencies) < 2.0, latencies
        assert stalled.ended() == [], "a stalled call ended before its read deadline"
    finally:
        stalled.close()
    print(
        f"1 connection x 64 stalled streams + 60 idle TLS connections: honest CSRs p50 "
        f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
    )


def test_stalls_that_hold_every_thread_are_cancelled_by_the_read_deadline(
    served: tuple[CitadelServe, list[MtlsSigner]],
) -> None:
    serve, signers = served
    stalled = StalledCalls(int(serve.ready["port"]), serve.root_pem(), connections=8, streams=64)
    try:
        time.sleep(0.5)  # 8 connections x 8 streams: more stalls than the 16 threads
        started = time.monotonic()
        latencies = _timed_signatures(signers, 3)
        bound = READ_TIMEOUT_S + 4.0
        assert max(latencies) < bound, latencies
        deadline = time.monotonic() + bound
        while len(stalled.ended()) < len(stalled.calls) and time.monotonic() < deadline:
            time.sleep(0.1)
        ended = stalled.ended()
        assert len(ended) == len(stalled.calls), f"{len(ended)} of {len(stalled.calls)} ended"
        assert set(ended) == {grpc.StatusCode.CANCELLED}, set(ended)
        after = _timed_signatures(signers, 2)
        assert max(after) < 2.0, after
    finally:
        stalled.close()
    assert "no request message within 5.0s; call cancelled" in serve.log()
    print(
        f"8 connections x 8 stalled streams: honest CSRs max {max(latencies):.2f} s (bound "
        f"{bound:.0f} s, first after {latencies[0]:.2f} s), all stalls cancelled within "
        f"{time.monotonic() - started:.1f} s; afterwards max {max(after) * 1000:.0f} ms"
    )
