"""Workload API latency with a warm cache: the target is p99 <= 5 ms per fetch.

The server (attesting proxy + grpc.aio + attestation per call) runs in this process from
an in-memory source whose SVIDs are already issued; a client in a second process keeps
one channel open and measures, per call:

* ``FetchX509SVID``: open the stream, receive the first message, cancel;
* ``FetchJWTBundles``: the same for JWT bundles;
* ``FetchJWTSVID``: one unary call (the fake source signs a fresh ES256 token each time);
* ``FetchX509SVID (new connection)``: a fresh channel per call (connect, proxy, attest).

    python -m tests.bench.bench_workload_api [--calls 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGET_P99_MS = 5.0
HEADER = (("workload.spiffe.io", "true"),)


# --- client side (a separate process) -----------------------------------------------------


def _client(endpoint: str, calls: int, warmup: int) -> dict[str, list[float]]:
    import grpc

    from citadel._proto import workload_pb2, workload_pb2_grpc

    target = endpoint.replace("unix://", "unix:", 1)
    channel = grpc.insecure_channel(target)
    stub = workload_pb2_grpc.SpiffeWorkloadAPIStub(channel)

    def first(call: Any) -> None:
        next(call)
        call.cancel()

    def fresh_connection() -> None:
        with grpc.insecure_channel(target) as fresh:
            first(
                workload_pb2_grpc.SpiffeWorkloadAPIStub(fresh).FetchX509SVID(
                    workload_pb2.X509SVIDRequest(), metadata=HEADER
                )
            )

    operations: dict[str, Callable[[], None]] = {
        "FetchX509SVID": lambda: first(
            stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        ),
        "FetchJWTBundles": lambda: first(
            stub.FetchJWTBundles(workload_pb2.JWTBundlesRequest(), metadata=HEADER)
        ),
        "FetchJWTSVID": lambda: stub.FetchJWTSVID(
            workload_pb2.JWTSVIDRequest(audience=["bench"]), metadata=HEADER
        ),
        "FetchX509SVID (new connection)": fresh_connection,
    }
    results: dict[str, list[float]] = {}
    for name, operation in operations.items():
        count = calls if "new connection" not in name else max(calls // 4, 50)
        for _ in range(warmup):
            operation()
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            operation()
            samples.append((time.perf_counter() - start) * 1000)
        results[name] = samples
    channel.close()
    return results


# --- server side --------------------------------------------------------------------------


def _percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def _serve_and_measure(calls: int, warmup: int) -> dict[str, list[float]]:
    from citadel.identity.bundle import TrustBundle
    from citadel.identity.clock import SystemClock
    from citadel.identity.jwt_svid import PrivateKeyJwtSigner
    from citadel.identity.keys import KeyType, generate_private_key
    from tests.fixtures.pki import make_pki
    from tests.unit.node_agent.workload_api.fakes import (
        FakeIdentitySource,
        make_entry,
        svid_material,
    )
    from tests.unit.node_agent.workload_api.harness import running_server

    pki = make_pki("bench.local", now=datetime.now(UTC))
    signer = PrivateKeyJwtSigner("bench-jwt", generate_private_key(KeyType.EC_P256))
    source = FakeIdentitySource(
        clock=SystemClock(),
        signer=signer,
        bundles=[TrustBundle(pki.trust_domain, (pki.root,), (signer.authority(),))],
    )
    entry = make_entry("bench", "spiffe://bench.local/bench", f"unix:uid:{os.geteuid()}")
    source.put(entry, svid_material(pki, entry.spiffe_id))
    async with running_server(source, clock=SystemClock()) as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bench.bench_workload_api",
            "--client",
            server.endpoint,
            "--calls",
            str(calls),
            "--warmup",
            str(warmup),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(process.communicate(), 600)
        if process.returncode != 0:
            raise SystemExit(f"bench client failed with {process.returncode}")
    result: dict[str, list[float]] = json.loads(out)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        print(json.dumps(_client(args.client, args.calls, args.warmup)))
        return 0
    results = asyncio.run(_serve_and_measure(args.calls, args.warmup))
    print(f"{'operation':34} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    worst = 0.0
    for name, samples in results.items():
        p99 = _percentile(samples, 0.99)
        if "new connection" not in name:
            worst = max(worst, p99)
        print(
            f"{name:34} {len(samples):>6} {statistics.median(samples):>8.2f} "
            f"{_percentile(samples, 0.90):>8.2f} {p99:>8.2f} {max(samples):>8.2f}"
        )
    verdict = "PASS" if worst <= TARGET_P99_MS else "FAIL"
    print(f"warm-channel fetch p99 {worst:.2f} ms (target <= {TARGET_P99_MS} ms): {verdict}")
    return 0 if worst <= TARGET_P99_MS else 1


if __name__ == "__main__":
    sys.exit(main())
