"""Batch signing through the agent API, next to the single-CSR API and ``cfssl serve``.

One run, one machine, the same ECDSA P-256 CSRs for all three:

* cfssl: ``cfssl serve`` (``POST /api/v1/cfssl/sign``, no database), the harness of
  :mod:`tests.bench.bench_csr_api`;
* citadel single: the real ``citadel serve``, one ``CreateCertificate`` per certificate
  (Kubernetes tokens through a loopback TokenReview API), also from that harness;
* citadel batch: the same server's ``citadel.agent.v1.AgentService/BatchNewX509SVID`` over
  mTLS with a node agent's own certificate, ``--batch`` CSRs per call, each checked against
  the agent's registration entries, signed by the issuer and audited before the answer.

The figure is certificates per second (a batch of 64 counts 64), with ``--inflight`` calls
outstanding from separate load processes. The audit log is counted and verified at the end.

    python -m tests.bench.bench_batch_signing [--batch 64] [--inflight 4] [--workers 1,2]

Target: citadel batch >= 1.5x the best cfssl figure of the run. Each server worker is one
process holding the GIL while it verifies and signs, and the workers share one SQLite file
(its write lock), so both worker counts are measured.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId
from tests.bench.bench_csr_api import (
    CITADEL,
    TRUST_DOMAIN,
    CitadelUnderTest,
    LoadResult,
    Measurement,
    _descendants,
    _process_cpu_seconds,
    _stop,
    cfssl_ca,
    make_csrs,
    measure,
    start_cfssl,
)

AGENT = SpiffeId.parse(f"spiffe://{TRUST_DOMAIN}/citadel/agent/bench")
RATIO_TARGET = 1.5


# --- load generation (separate processes) --------------------------------------------------


@dataclass(frozen=True)
class BatchSpec:
    port: int
    root_pem: bytes
    chain_pem: bytes
    key_pem: bytes
    batches: list[list[tuple[str, bytes]]]  # per call: (entry_id, DER CSR)
    threads: int
    window_start: float
    window_end: float


def _batch_worker(spec: BatchSpec, index: int, out: list[float], errors: list[str]) -> None:
    import grpc

    from citadel._proto import citadel_agent_pb2 as pb
    from citadel._proto import citadel_agent_pb2_grpc as pb_grpc

    credentials = grpc.ssl_channel_credentials(
        root_certificates=spec.root_pem, private_key=spec.key_pem, certificate_chain=spec.chain_pem
    )
    channel = grpc.secure_channel(
        f"127.0.0.1:{spec.port}",
        credentials,
        options=[
            ("grpc.ssl_target_name_override", "localhost"),
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )
    stub = pb_grpc.AgentServiceStub(channel)
    requests = [
        pb.BatchNewX509SVIDRequest(
            requests=[pb.X509SVIDRequest(entry_id=e, csr=c) for e, c in batch]
        )
        for batch in spec.batches[index :: spec.threads] or spec.batches
    ]
    n = 0
    while True:
        started = time.time()
        if started >= spec.window_end:
            break
        request = requests[n % len(requests)]
        n += 1
        t0 = time.perf_counter()
        try:
            answer = stub.BatchNewX509SVID(request, timeout=60)
            bad = [r for r in answer.results if r.status.code != 0 or not r.cert_chain]
            if bad:
                errors.append(f"{len(bad)} items refused: {bad[0].status.message}")
        except grpc.RpcError as exc:
            bad = list(request.requests)
            errors.append(f"{exc.code()}: {exc.details()}")
        elapsed = time.perf_counter() - t0
        if not bad and started >= spec.window_start:
            out.extend([elapsed / len(request.requests)] * len(request.requests))
    channel.close()


def batch_load_process(spec: BatchSpec, results: Queue[LoadResult]) -> None:
    latencies: list[list[float]] = [[] for _ in range(spec.threads)]
    errors: list[list[str]] = [[] for _ in range(spec.threads)]
    cpu0 = time.process_time()
    threads = [
        threading.Thread(target=_batch_worker, args=(spec, i, latencies[i], errors[i]))
        for i in range(spec.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat = [e for chunk in errors for e in chunk]
    results.put(
        LoadResult(
            latencies=[x for chunk in latencies for x in chunk],
            errors=len(flat),
            cpu_seconds=time.process_time() - cpu0,
            first_error=flat[0] if flat else "",
        )
    )


def measure_batch(
    target: str,
    spec_for: BatchSpec,
    *,
    inflight: int,
    loaders: int,
    warmup: float,
    seconds: float,
    server_pid: int,
) -> Measurement:
    """Like :func:`tests.bench.bench_csr_api.measure`, for batch calls (one row per run)."""
    context = multiprocessing.get_context("spawn")
    results: Queue[LoadResult] = context.Queue()
    loaders = max(1, min(loaders, inflight))
    shares = [inflight // loaders + (1 if i < inflight % loaders else 0) for i in range(loaders)]
    start = time.time() + 3.0
    window_start, window_end = start + warmup, start + warmup + seconds
    processes = []
    for offset, share in enumerate(shares):
        batches = spec_for.batches[offset:] + spec_for.batches[:offset]
        spec = BatchSpec(
            port=spec_for.port, root_pem=spec_for.root_pem, chain_pem=spec_for.chain_pem,
            key_pem=spec_for.key_pem, batches=batches, threads=share,
            window_start=window_start, window_end=window_end,
        )  # fmt: skip
        process = context.Process(target=batch_load_process, args=(spec, results))
        process.start()
        processes.append(process)
    pids = _descendants(server_pid)
    time.sleep(max(0.0, window_start - time.time()))
    cpu_before = _process_cpu_seconds(pids)
    time.sleep(max(0.0, window_end - time.time()))
    cpu_after = _process_cpu_seconds(pids)
    outcomes = [results.get(timeout=180) for _ in processes]
    for process in processes:
        process.join(30)
    per_cert = sorted(x for o in outcomes for x in o.latencies)
    count = len(per_cert)
    loader_cpu = sum(o.cpu_seconds for o in outcomes) * seconds / (seconds + warmup + 3)
    batch_size = len(spec_for.batches[0])
    return Measurement(
        target=target,
        inflight=inflight,
        rate=count / seconds,
        p50_ms=statistics.median(per_cert) * batch_size * 1000 if per_cert else float("nan"),
        p99_ms=(
            per_cert[min(count - 1, int(count * 0.99))] * batch_size * 1000
            if per_cert
            else float("nan")
        ),
        errors=sum(o.errors for o in outcomes),
        server_cpu_ms_per_request=(cpu_after - cpu_before) * 1000 / max(1, count),
        loader_cpu_ms_per_request=loader_cpu * 1000 / max(1, count),
        first_error=next((o.first_error for o in outcomes if o.first_error), ""),
    )


# --- set-up of the agent side --------------------------------------------------------------


def register_entries(data_dir: Path, csrs: dict[str, list[str]]) -> None:
    """One entry per bench identity, under the bench agent (straight into the store)."""
    from citadel.store.repository import Repository

    repository = Repository.open(f"sqlite:///{data_dir / 'citadel.db'}")
    try:
        now = datetime.now(UTC)
        for i, name in enumerate(csrs):
            repository.create_entry(
                RegistrationEntry(
                    entry_id=name,
                    spiffe_id=SpiffeId.parse(f"spiffe://{TRUST_DOMAIN}/ns/bench/sa/{name}"),
                    parent_id=AGENT,
                    selectors=frozenset({Selector.of("unix", "uid", 1000 + i)}),
                ),
                now,
            )
    finally:
        repository.close()


def agent_certificate(server: CitadelUnderTest) -> tuple[bytes, bytes]:
    """The bench agent's own X509-SVID (``citadel cert mint``): (chain PEM, key PEM)."""
    out = server.directory / "agent"
    subprocess.run(
        [CITADEL, "--data-dir", str(server.data), "cert", "mint", "--spiffe-id", str(AGENT),
         "--ttl", "2h", "--out", str(out)],
        check=True, capture_output=True, env=server.env, timeout=60,
    )  # fmt: skip
    return (out / "cert-chain.pem").read_bytes(), (out / "key.pem").read_bytes()


def batches_of(csrs: dict[str, list[str]], size: int) -> list[list[tuple[str, bytes]]]:
    items = [
        (name, x509.load_pem_x509_csr(pem.encode()).public_bytes(Encoding.DER))
        for j in range(max(len(p) for p in csrs.values()))
        for name, pems in csrs.items()
        for pem in pems[j : j + 1]
    ]
    return [
        [items[(start + k) % len(items)] for k in range(size)]
        for start in range(0, len(items), size)
    ]


def run_citadel(
    base: Path,
    workers: int,
    csrs: dict[str, list[str]],
    args: argparse.Namespace,
    notes: list[str],
) -> list[Measurement]:
    """``citadel serve --workers N``: the single-CSR API, then batches of each size."""
    results: list[Measurement] = []
    label = f"{workers} worker{'s' if workers > 1 else ''}"
    directory = base / f"citadel-{workers}"
    directory.mkdir()
    server = CitadelUnderTest(directory, workers, extra=("--mtls-listen", "127.0.0.1:0"))
    try:
        mtls_port = int(json.loads(server.ready.read_text())["mtls_port"])
        register_entries(server.data, csrs)
        chain_pem, key_pem = agent_certificate(server)
        results.append(
            measure(f"citadel single ({label})", "grpc", server.port, server.root_pem,
                    server.payloads(csrs), inflight=args.single_inflight, loaders=args.loaders,
                    warmup=args.warmup, seconds=args.seconds, server_pid=server.process.pid)
        )  # fmt: skip
        for size in (int(x) for x in args.batch.split(",")):
            spec = BatchSpec(
                port=mtls_port, root_pem=server.root_pem, chain_pem=chain_pem, key_pem=key_pem,
                batches=batches_of(csrs, size), threads=1, window_start=0.0, window_end=0.0,
            )  # fmt: skip
            results.append(
                measure_batch(f"citadel batch {size} ({label})", spec, inflight=args.inflight,
                              loaders=args.loaders, warmup=args.warmup, seconds=args.seconds,
                              server_pid=server.process.pid)
            )  # fmt: skip
    finally:
        issued, chain_ok = server.stop()
    notes.append(
        f"citadel ({label}): {issued} issuance audit rows committed, "
        f"audit chain {'verified' if chain_ok else 'BROKEN'}"
    )
    return results


# --- the report ----------------------------------------------------------------------------


def _row(m: Measurement) -> str:
    return (
        f"{m.target:<30} {m.inflight:>9} {m.rate:>9.0f} {m.p50_ms:>9.2f} {m.p99_ms:>9.2f} "
        f"{m.server_cpu_ms_per_request:>11.2f} {m.errors:>7}"
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_batch_signing", description=__doc__.split("\n")[0])
    parser.add_argument("--batch", default="64", help="CSRs per batch call (comma-separated)")
    parser.add_argument("--inflight", type=int, default=4, help="batch calls outstanding")
    parser.add_argument("--single-inflight", type=int, default=8, help="single CSRs outstanding")
    parser.add_argument("--cfssl-inflight", default="8,64")
    parser.add_argument(
        "--workers",
        default="1,2",
        help="citadel serve --workers (comma-separated to compare several)",
    )
    parser.add_argument("--loaders", type=int, default=2)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args(list(argv))
    if not Path("/usr/bin/cfssl").exists():
        print("cfssl is not installed (/usr/bin/cfssl); apt-get install golang-cfssl")
        return 1
    results: list[Measurement] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        base = Path(tmp)
        csrs = make_csrs()
        cf_dir = base / "cfssl"
        cf_dir.mkdir()
        cf_root = cfssl_ca(cf_dir)
        cfssl, cf_port = start_cfssl(cf_dir)
        try:
            payloads = [
                ("", json.dumps({"certificate_request": pem}))
                for pems in csrs.values() for pem in pems
            ]  # fmt: skip
            for inflight in (int(x) for x in args.cfssl_inflight.split(",")):
                results.append(
                    measure("cfssl serve", "cfssl", cf_port, cf_root, payloads,
                            inflight=inflight, loaders=args.loaders, warmup=args.warmup,
                            seconds=args.seconds, server_pid=cfssl.pid)
                )  # fmt: skip
        finally:
            _stop(cfssl)
        for workers in (int(x) for x in args.workers.split(",")):
            results.extend(run_citadel(base, workers, csrs, args, notes))
    print(f"Certificates/s, ECDSA P-256, TLS, {os.cpu_count()} CPUs shared by servers and load")
    print(f"{'target':<30} {'in flight':>9} {'certs/s':>9} {'p50 ms':>9} {'p99 ms':>9} "
          f"{'srv cpu ms':>11} {'errors':>7}")  # fmt: skip
    print("(batch rows: in flight = batch calls outstanding; latency = per call)")
    for m in results:
        print(_row(m))
    for note in notes:
        print(note)
    for m in results:
        if m.first_error:
            print(f"first error from {m.target} @ {m.inflight}: {m.first_error[:200]}")
    best_cfssl = max(m.rate for m in results if m.target == "cfssl serve")
    failed = any(m.errors for m in results if m.target.startswith("citadel"))
    for m in results:
        if not m.target.startswith("citadel batch"):
            continue
        ratio = m.rate / best_cfssl if best_cfssl else float("nan")
        verdict = "ok" if ratio >= RATIO_TARGET else "BELOW TARGET"
        print(f"{m.target}: {ratio:.2f}x the best cfssl figure ({verdict}, target "
              f">= {RATIO_TARGET}x)")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
