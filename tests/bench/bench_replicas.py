"""CA replicas on one PostgreSQL database: scaling out, and a mass start of new workloads.

Real ``citadel serve`` processes (one worker each) share a PostgreSQL 15 server started here
(``tests.peers.postgres``: loopback, ``fsync=off``) and one key directory; a loopback fake
Kubernetes API server answers their TokenReviews. The load generator is
:mod:`tests.bench.load` (separate processes, blocking gRPC clients in threads).

1. **Scale-out**: requests/s of one replica, then of two (the same total in flight, spread
   over both ports), with cached tokens, in one run. Server CPU per request is reported
   next to it: on a machine with fewer cores than servers plus load generator, the ratio
   is bounded by the cores, not by the replicas.
2. **Mass start**: ``--workloads`` new pods, each with its own service-account token (a
   TokenReview each, answered after ``--review-latency`` ms, uniformly random), each asking
   once, ``--mass-inflight`` at a time, spread over both replicas. The figure is the time
   until the last one holds a certificate; the CPU of each party shows the bottleneck.

    python -m tests.bench.bench_replicas [--inflight 32] [--seconds 6] [--workloads 10000]

Targets: two replicas >= 1.7x one replica; 10,000 workloads certified in <= 10 s.
Afterwards every issuance is counted in the audit log and the hash chain is verified.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.spiffe_id import SpiffeId
from tests.bench.bench_csr_api import (
    CA_API_TOKEN,
    TRUST_DOMAIN,
    CitadelUnderTest,
    _row,
    _token,
    make_csrs,
)
from tests.bench.load import (
    MassStart,
    Measurement,
    mass_start,
    measure,
    process_cpu_seconds,
    process_tree,
)
from tests.fakes.kube_api_server import (
    TOKEN_REVIEW_PATH,
    FakeKubeApiServer,
    FakeRequest,
    FakeResponse,
    Handler,
    TokenReviewBook,
)
from tests.peers.postgres import PostgresServer, start_postgres, stop_postgres

SCALE_TARGET = 1.7
MASS_TARGET_SECONDS = 10.0
THROTTLED = "citadel_server_token_review_throttled_count_total"


def slow_reviews(book: TokenReviewBook, low_ms: float, high_ms: float) -> Handler:
    """The book's answers, each after a random delay (an API server's TokenReview latency)."""
    rng = random.Random(8)

    def handle(request: FakeRequest) -> FakeResponse:
        response = book.handle(request)
        response.delay = rng.uniform(low_ms, high_ms) / 1000
        return response

    return handle


def new_workloads(count: int) -> list[tuple[str, str, str]]:
    """(account, token, CSR PEM) for ``count`` distinct service accounts."""
    keys = [generate_private_key(KeyType.EC_P256) for _ in range(32)]
    found = []
    for i in range(count):
        account = f"pod-{i:05d}"
        identity = SpiffeId.parse(f"spiffe://{TRUST_DOMAIN}/ns/bench/sa/{account}")
        found.append((account, _token(account), csr_to_pem(build_csr(keys[i % 32], identity))))
    return found


def _latency_range(text: str) -> tuple[float, float]:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", text)
    if match is None or float(match[1]) > float(match[2]):
        raise argparse.ArgumentTypeError("use LOW-HIGH in milliseconds, e.g. 5-20")
    return float(match[1]), float(match[2])


class Cluster:
    """PostgreSQL, the fake API server, and the replicas (started on demand)."""

    def __init__(self, base: Path, review_latency: tuple[float, float]) -> None:
        self.base = base
        self.postgres: PostgresServer = start_postgres()
        self.api = FakeKubeApiServer(required_token=CA_API_TOKEN)
        self.book = TokenReviewBook()
        self.api.add_handler(
            "POST", re.escape(TOKEN_REVIEW_PATH), slow_reviews(self.book, *review_latency)
        )
        self.api.start()
        self.replicas: list[CitadelUnderTest] = []

    def add_replica(self) -> CitadelUnderTest:
        directory = self.base / f"replica-{len(self.replicas)}"
        directory.mkdir()
        replica = CitadelUnderTest(
            directory, 1, api=self.api, book=self.book, db_url=self.postgres.url(),
            keys_dir=self.base / "shared-keys", metrics=True,
        )  # fmt: skip
        self.replicas.append(replica)
        return replica

    @property
    def ports(self) -> list[int]:
        return [r.port for r in self.replicas]

    @property
    def pids(self) -> list[int]:
        return [r.process.pid for r in self.replicas]

    def log_lines(self, pattern: str) -> int:
        """How many lines of the replicas' logs match ``pattern`` (warnings to report)."""
        found = 0
        for replica in self.replicas:
            text = (replica.directory / "citadel.log").read_text(errors="replace")
            found += len(re.findall(pattern, text))
        return found

    def close(self) -> tuple[int, bool]:
        issued, verified = 0, False
        for replica in self.replicas:
            issued, verified = replica.stop()  # one database: the last count is the total
        self.api.stop()
        stop_postgres(self.postgres)
        return issued, verified


def _mass_report(
    result: MassStart, workloads: int, *, api_cpu: float, db_cpu: float, reviews: int
) -> list[str]:
    rate = result.certified / result.seconds if result.seconds > 0 else float("nan")
    verdict = "ok" if result.seconds <= MASS_TARGET_SECONDS and result.errors == 0 else "MISSED"
    lines = [
        f"mass start: {result.certified}/{workloads} workloads certified in {result.seconds:.1f} s "
        f"({rate:.0f}/s; {verdict}, target <= {MASS_TARGET_SECONDS:.0f} s), "
        f"p50 {result.p50_ms:.0f} ms, p99 {result.p99_ms:.0f} ms, {result.errors} errors",
        f"  TokenReviews answered by the fake API server: {reviews}",
        f"  CPU during the run: replicas {result.server_cpu_seconds:.1f} s "
        f"({result.server_cpu_seconds * 1000 / max(1, result.certified):.2f} ms/cert), "
        f"fake API server {api_cpu:.1f} s, PostgreSQL {db_cpu:.1f} s, "
        f"load generator {result.loader_cpu_seconds:.1f} s "
        f"(incl. start-up), on {os.cpu_count()} CPUs x {result.seconds:.1f} s = "
        f"{(os.cpu_count() or 1) * result.seconds:.1f} CPU-s available",
    ]
    if result.error_kinds:
        lines.append(f"  errors by kind: {result.error_kinds}; first: {result.first_error[:160]}")
    return lines


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_replicas", description=__doc__.split("\n")[0])
    parser.add_argument("--inflight", type=int, default=32, help="scale-out: total in flight")
    parser.add_argument("--loaders", type=int, default=2, help="load-generator processes")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--workloads", type=int, default=10_000, help="mass start (0: skip)")
    parser.add_argument("--mass-inflight", type=int, default=128)
    parser.add_argument("--review-latency", type=_latency_range, default=(5.0, 20.0))
    args = parser.parse_args(list(argv))

    lines: list[str] = []
    results: list[Measurement] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp:
        cluster = Cluster(Path(tmp), args.review_latency)
        try:
            first = cluster.add_replica()
            payloads = first.payloads(make_csrs())
            for count in (1, 2):
                if count == 2:
                    cluster.add_replica()
                results.append(
                    measure(f"{count} replica{'s' if count > 1 else ''}", "grpc", cluster.ports,
                            first.root_pem, payloads, inflight=args.inflight,
                            loaders=args.loaders, warmup=args.warmup, seconds=args.seconds,
                            server_pid=cluster.pids)
                )  # fmt: skip
            one, two = results
            ratio = two.rate / one.rate if one.rate else float("nan")
            verdict = "ok" if ratio >= SCALE_TARGET else "BELOW TARGET"
            lines.append(
                f"2 replicas @ {args.inflight} in flight: {ratio:.2f}x one replica "
                f"({verdict}, target >= {SCALE_TARGET}x); server CPU per request "
                f"{one.server_cpu_ms_per_request:.2f} ms -> {two.server_cpu_ms_per_request:.2f} ms"
            )
            failed = any(m.errors for m in results)
            leaders = [int(r.metric("citadel_server_is_leader")) for r in cluster.replicas]
            lines.append(f"leader gauge per replica: {leaders} (exactly one leads)")
            if args.workloads > 0:
                work = new_workloads(args.workloads)
                for account, token, _ in work:
                    cluster.book.allow(token, f"system:serviceaccount:bench:{account}")
                reviews_before = cluster.book.review_count
                api_cpu_before = time.process_time()  # this process serves the fake API
                db_pids = process_tree(cluster.postgres.pid)
                db_cpu_before = process_cpu_seconds(db_pids)
                mass = mass_start(
                    cluster.ports, first.root_pem, [(token, csr) for _, token, csr in work],
                    inflight=args.mass_inflight, loaders=args.loaders, server_pids=cluster.pids,
                )  # fmt: skip
                api_cpu = time.process_time() - api_cpu_before
                db_cpu = process_cpu_seconds(db_pids) - db_cpu_before
                reviews = cluster.book.review_count - reviews_before
                lines.extend(
                    _mass_report(
                        mass, args.workloads, api_cpu=api_cpu, db_cpu=db_cpu, reviews=reviews
                    )
                )
                throttled = {
                    outcome: sum(r.metric(THROTTLED, outcome=outcome) for r in cluster.replicas)
                    for outcome in ("delayed", "refused")
                }
                lines.append(f"  TokenReviews throttled client-side: {throttled}")
                pool_full = cluster.log_lines(r"Connection pool is full")
                lines.append(f"  API client connections discarded (pool full): {pool_full}")
                failed = failed or mass.errors > 0
        finally:
            issued, chain_ok = cluster.close()
    print(f"CSR API on PostgreSQL, ECDSA P-256, TLS, {os.cpu_count()} CPUs shared by all")
    print(f"{'target':<22} {'in flight':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'srv cpu ms':>11} {'load cpu ms':>11} {'errors':>7}")  # fmt: skip
    for m in results:
        print(_row(m))
    for line in lines:
        print(line)
    print(
        f"audit: {issued} issuance events committed, chain {'verified' if chain_ok else 'BROKEN'}"
    )
    for m in results:
        if m.first_error:
            print(f"first error from {m.target}: {m.first_error[:200]}")
    return 1 if failed or not chain_ok else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
