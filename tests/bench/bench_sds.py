"""SDS benchmarks: rotation latency at a real Envoy, and one agent with 1,000 streams.

Everything is real: ``citadel serve`` (the CA, per-identity rate limit off), one
``citadel-agent run`` bootstrapped with a certificate from ``citadel cert mint``, and:

1. Rotation latency. A real Envoy (the server-sidecar example, client certificates not
   required) gets ``default`` from the agent. Each sample asks the agent to rotate
   (``POST /rotate``) and makes fresh TLS handshakes with Envoy until one presents the new
   serial. Latency = that handshake's completion - the moment the certificate entered the
   agent's cache (``published_at`` of ``/status``). Target: p50 <= 10 ms.
2. Scale. A separate Python process opens 1,000 SDS streams over the Unix socket (500
   connections, each with one StreamSecrets and one DeltaSecrets stream for ``default``,
   ACKing like Envoy). The agent rotates once; the spread is the last stream's receipt of
   the new certificate - ``published_at``. Targets: all pushed within 1 s, agent RSS
   <= 150 MB (read from /proc while the streams are open).

    python -m tests.bench.bench_sds [--samples 30] [--connections 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

LATENCY_TARGET_MS = 10.0
PUSH_TARGET_S = 1.0
RSS_TARGET_MB = 150.0
SPIFFE_ID = "spiffe://example.org/ns/bench/sa/envoy"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _published_at(agent: Any) -> float:
    for secret in agent.status()["secrets"]:
        if secret["name"] == "default":
            return datetime.fromisoformat(secret["published_at"]).timestamp()
    raise RuntimeError("no default secret")


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --- 1. rotation latency --------------------------------------------------------------------
def measure_rotation_latency(agent: Any, base: Path, roots: Path, samples: int) -> dict[str, Any]:
    from tests.integration.node_agent.mesh import HandshakeFailed, handshake
    from tests.peers.envoy import EnvoyProcess, adapt_for_test, load_example

    document = adapt_for_test(load_example("server-sidecar.yaml"), sds_socket=base / "sds.sock")
    listener = document["static_resources"]["listeners"][0]
    listener["filter_chains"][0]["transport_socket"]["typed_config"][
        "require_client_certificate"
    ] = False
    envoy = EnvoyProcess(document, base / "envoy", "bench-envoy").start()
    port = envoy.listener_port("inbound_mtls")
    latencies: list[float] = []
    failed = handshakes = 0
    try:
        serial = handshake(port, roots=roots).serial_hex
        for _ in range(samples):
            agent.rotate()
            deadline = time.monotonic() + 10
            while True:
                try:
                    seen = handshake(port, roots=roots).serial_hex
                    handshakes += 1
                except HandshakeFailed:
                    failed += 1
                    seen = serial
                if seen != serial:
                    done = time.time()
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("rotation never reached Envoy")
            latencies.append((done - _published_at(agent)) * 1000)
            serial = seen
            time.sleep(0.05)
    finally:
        envoy.stop()
    return {
        "samples": len(latencies),
        "p50_ms": statistics.median(latencies),
        "p90_ms": _percentile(latencies, 0.9),
        "max_ms": max(latencies),
        "handshakes": handshakes,
        "failed_handshakes": failed,
    }


# --- 2. 1,000 streams (the client side runs in its own process) -------------------------------
async def _client_streams(socket_path: str, connections: int) -> None:
    import grpc
    from envoy.config.core.v3 import base_pb2
    from envoy.service.discovery.v3 import discovery_pb2
    from envoy.service.secret.v3 import sds_pb2_grpc

    type_url = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
    all_ready = asyncio.Event()
    ready = 0
    total = connections * 2
    received: list[float] = []

    def first_chain(response: Any) -> bytes:
        from envoy.extensions.transport_sockets.tls.v3 import secret_pb2

        resource = response.resources[0]
        packed = (
            resource.resource
            if isinstance(response, discovery_pb2.DeltaDiscoveryResponse)
            else resource
        )
        secret = secret_pb2.Secret()
        packed.Unpack(secret)
        return bytes(secret.tls_certificate.certificate_chain.inline_bytes)

    async def one(stub: Any, index: int, delta: bool) -> None:
        nonlocal ready
        node = base_pb2.Node(id=f"bench-{index}", cluster="bench")
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def requests() -> Any:
            while (item := await queue.get()) is not None:
                yield item

        if delta:
            call = stub.DeltaSecrets(requests())
            queue.put_nowait(
                discovery_pb2.DeltaDiscoveryRequest(
                    node=node, type_url=type_url, resource_names_subscribe=["default"]
                )
            )
        else:
            call = stub.StreamSecrets(requests())
            queue.put_nowait(
                discovery_pb2.DiscoveryRequest(
                    node=node, type_url=type_url, resource_names=["default"]
                )
            )
        first = await call.read()
        ack: Any = (
            discovery_pb2.DeltaDiscoveryRequest(type_url=type_url, response_nonce=first.nonce)
            if delta
            else discovery_pb2.DiscoveryRequest(
                type_url=type_url,
                resource_names=["default"],
                version_info=first.version_info,
                response_nonce=first.nonce,
            )
        )
        queue.put_nowait(ack)
        ready += 1
        if ready == total:
            all_ready.set()
        before = first_chain(first)
        while True:
            update = await call.read()
            if first_chain(update) != before:
                received.append(time.time())
                break
        queue.put_nowait(None)
        call.cancel()

    channels = [grpc.aio.insecure_channel(f"unix:{socket_path}") for _ in range(connections)]
    tasks = []
    for index, channel in enumerate(channels):
        stub = sds_pb2_grpc.SecretDiscoveryServiceStub(channel)
        tasks.append(asyncio.create_task(one(stub, index, False)))
        tasks.append(asyncio.create_task(one(stub, index, True)))
    await asyncio.wait_for(all_ready.wait(), 120)
    print(json.dumps({"ready": total}), flush=True)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    print(json.dumps({"received": received}), flush=True)
    for channel in channels:
        await channel.close()


def measure_streams(agent: Any, socket_path: Path, connections: int) -> dict[str, Any]:
    idle_rss = _rss_mb(agent.pid)
    client = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.bench.bench_sds",
            "--client",
            str(socket_path),
            str(connections),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert client.stdout is not None
        ready = json.loads(client.stdout.readline())
        streams = ready["ready"]
        time.sleep(0.5)
        rss_open = _rss_mb(agent.pid)
        agent.rotate()
        result = json.loads(client.stdout.readline())
        rss_after = _rss_mb(agent.pid)
        client.wait(30)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait(10)
    published = _published_at(agent)
    delays = [t - published for t in result["received"]]
    return {
        "streams": streams,
        "pushed": len(delays),
        "first_s": min(delays),
        "p50_s": statistics.median(delays),
        "last_s": max(delays),
        "rss_idle_mb": idle_rss,
        "rss_streams_mb": rss_open,
        "rss_after_push_mb": rss_after,
    }


# --- set-up ----------------------------------------------------------------------------------
def run(samples: int, connections: int) -> dict[str, Any]:
    from tests.integration.node_agent.agent_process import AgentProcess
    from tests.peers.citadel_server import start_citadel_server

    base = Path(tempfile.mkdtemp(prefix="na-bench-", dir="/tmp"))
    ca = agent = None
    try:
        ca = start_citadel_server(base / "ca", extra_args=("--identity-rate", "0"))
        roots = base / "roots.pem"
        roots.write_bytes(ca.root_bundle_pem())
        boot = ca.mint(SPIFFE_ID, base / "boot")
        agent = AgentProcess(
            {
                "spiffe_id": SPIFFE_ID,
                "ttl_seconds": 3600,
                "log_level": "warning",
                "ca": {
                    "address": ca.address,
                    "mtls_address": ca.mtls_address,
                    "server_name": "localhost",
                    "root_bundle": str(roots),
                    "credential": {
                        "type": "certificate",
                        "cert_file": str(boot / "cert-chain.pem"),
                        "key_file": str(boot / "key.pem"),
                    },
                },
                "sds": {"socket_path": str(base / "sds.sock")},
                "status": {"port": 0},
            },
            base / "agent",
            name="bench-agent",
        ).start()
        latency = measure_rotation_latency(agent, base, roots, samples)
        streams = measure_streams(agent, base / "sds.sock", connections)
        return {"latency": latency, "streams": streams}
    finally:
        if agent is not None:
            agent.stop()
        if ca is not None:
            ca.stop()
        shutil.rmtree(base, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_sds", description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument(
        "--client", nargs=2, metavar=("SOCKET", "CONNECTIONS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(list(argv or []))
    if args.client:
        asyncio.run(_client_streams(args.client[0], int(args.client[1])))
        return 0
    figures = run(args.samples, args.connections)
    latency, streams = figures["latency"], figures["streams"]
    ok_latency = latency["p50_ms"] <= LATENCY_TARGET_MS and latency["failed_handshakes"] == 0
    ok_push = streams["pushed"] == streams["streams"] and streams["last_s"] <= PUSH_TARGET_S
    ok_rss = max(streams["rss_streams_mb"], streams["rss_after_push_mb"]) <= RSS_TARGET_MB
    print(f"{'measure':44} {'value':>12}  target")
    print(
        f"{'rotation latency p50 (cache -> new handshake)':44} {latency['p50_ms']:>9.1f} ms"
        f"  <= {LATENCY_TARGET_MS:.0f} ms {'OK' if ok_latency else 'MISSED'}"
    )
    print(f"{'  p90 / max':44} {latency['p90_ms']:>6.1f}/{latency['max_ms']:.1f} ms")
    print(
        f"{'  samples / handshakes / failed handshakes':44} "
        f"{latency['samples']}/{latency['handshakes']}/{latency['failed_handshakes']}"
    )
    print(f"{'SDS streams open (SotW + Delta)':44} {streams['streams']:>12}")
    print(
        f"{'rotation pushed to all streams (last)':44} {streams['last_s'] * 1000:>9.0f} ms"
        f"  <= {PUSH_TARGET_S * 1000:.0f} ms {'OK' if ok_push else 'MISSED'}"
    )
    print(
        f"{'  first / p50':44} {streams['first_s'] * 1000:>5.0f}/{streams['p50_s'] * 1000:.0f} ms"
    )
    print(
        f"{'agent RSS with the streams open':44} {streams['rss_streams_mb']:>9.1f} MB"
        f"  <= {RSS_TARGET_MB:.0f} MB {'OK' if ok_rss else 'MISSED'}"
    )
    print(
        f"{'  idle / after the push':44} "
        f"{streams['rss_idle_mb']:.1f}/{streams['rss_after_push_mb']:.1f} MB"
    )
    return 0 if ok_latency and ok_push and ok_rss else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
