"""CSR API throughput and latency: ``citadel serve`` next to ``cfssl serve``, in one run.

Both servers sign the same pre-generated ECDSA P-256 CSRs over TLS, with an ECDSA P-256
intermediate made by Citadel's own templates:

* citadel: the real ``citadel serve`` (gRPC over TLS, Kubernetes service-account tokens
  checked through a loopback TokenReview API and cached, strict CSR checks, the issuance
  and its audit row committed to SQLite before the answer), ``--workers`` processes.
* cfssl: ``cfssl serve`` with ``-tls-cert``, ``POST /api/v1/cfssl/sign`` (no database).

The load comes from separate processes (``--loaders``, see :mod:`tests.bench.load`), each
running blocking clients in threads (one gRPC channel or one keep-alive HTTPS connection per
thread), so that ``in flight`` requests are outstanding at all times. Requests that start
inside the measurement window count; latency is client-side, per request.

    python -m tests.bench.bench_csr_api [--inflight 8,64] [--workers 2] [--seconds 6]

Targets: citadel >= 0.6x cfssl's requests/s, and p99 <= 10 ms at 8 in flight.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes

from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_templates import CaSpec, LeafSpec, ca_builder, leaf_builder
from tests.bench.load import (
    LoadResult,
    LoadSpec,
    Measurement,
    load_process,
    measure,
    process_cpu_seconds,
    process_tree,
)
from tests.fakes.kube_api_server import FakeKubeApiServer, TokenReviewBook

__all__ = [
    "CITADEL",
    "TRUST_DOMAIN",
    "CitadelUnderTest",
    "LoadResult",
    "LoadSpec",
    "Measurement",
    "cfssl_ca",
    "load_process",
    "main",
    "make_csrs",
    "measure",
    "start_cfssl",
]

# The load generator lives in tests.bench.load; these names stay importable from here.
_process_cpu_seconds = process_cpu_seconds
_descendants = process_tree

TRUST_DOMAIN = TrustDomain("cluster.local")
K8S_ISSUER = "https://kubernetes.default.svc.cluster.local"
CA_API_TOKEN = "bench-ca-token"
IDENTITIES = 64
CSRS_PER_IDENTITY = 8
RATIO_TARGET = 0.6
P99_TARGET_MS = 10.0
CITADEL = str(Path(sys.executable).with_name("citadel"))


# --- the two servers -------------------------------------------------------------------------


def _wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def cfssl_ca(directory: Path) -> bytes:
    """Root and intermediate (ECDSA P-256) from Citadel's templates; files for cfssl."""
    now = datetime.now(UTC)
    root_key = generate_private_key(KeyType.EC_P256)
    root = ca_builder(
        CaSpec(trust_domain=TRUST_DOMAIN, common_name="bench root",
               public_key=root_key.public_key(), not_before=now - timedelta(hours=1),
               not_after=now + timedelta(days=30))
    ).sign(root_key, hashes.SHA256())  # fmt: skip
    key = generate_private_key(KeyType.EC_P256)
    intermediate = ca_builder(
        CaSpec(trust_domain=TRUST_DOMAIN, common_name="bench intermediate",
               public_key=key.public_key(), not_before=now - timedelta(hours=1),
               not_after=now + timedelta(days=30), path_length=0),
        root,
    ).sign(root_key, hashes.SHA256())  # fmt: skip
    server_key = generate_private_key(KeyType.EC_P256)
    server = leaf_builder(
        LeafSpec(spiffe_id=TRUST_DOMAIN.spiffe_id("/ns/bench/sa/cfssl"),
                 public_key=server_key.public_key(), not_before=now - timedelta(hours=1),
                 not_after=now + timedelta(days=1), dns_names=("localhost",)),
        intermediate,
    ).sign(key, hashes.SHA256())  # fmt: skip
    (directory / "ca.pem").write_text(certificates_to_pem([intermediate]))
    (directory / "ca-key.pem").write_bytes(private_key_to_pkcs8_pem(key))
    (directory / "server.pem").write_text(certificates_to_pem([server, intermediate]))
    (directory / "server-key.pem").write_bytes(private_key_to_pkcs8_pem(server_key))
    for name in ("ca-key.pem", "server-key.pem"):
        (directory / name).chmod(0o600)
    (directory / "config.json").write_text(
        json.dumps(
            {
                "signing": {
                    "default": {
                        "expiry": "24h",
                        "usages": ["digital signature", "server auth", "client auth"],
                    }
                }
            }
        )
    )
    return certificates_to_pem([root]).encode()


def start_cfssl(directory: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    log = (directory / "cfssl.log").open("wb")
    process = subprocess.Popen(
        ["/usr/bin/cfssl", "serve", "-address", "127.0.0.1", "-port", str(port),
         "-ca", str(directory / "ca.pem"), "-ca-key", str(directory / "ca-key.pem"),
         "-config", str(directory / "config.json"), "-tls-cert", str(directory / "server.pem"),
         "-tls-key", str(directory / "server-key.pem"), "-loglevel", "5"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    _wait_port(port)
    return process, port


def make_csrs() -> dict[str, list[str]]:
    keys = [generate_private_key(KeyType.EC_P256) for _ in range(16)]
    csrs: dict[str, list[str]] = {}
    for i in range(IDENTITIES):
        identity = SpiffeId.parse(f"spiffe://{TRUST_DOMAIN}/ns/bench/sa/w{i}")
        csrs[f"w{i}"] = [
            csr_to_pem(build_csr(keys[(i + j) % len(keys)], identity))
            for j in range(CSRS_PER_IDENTITY)
        ]
    return csrs


def _token(account: str) -> str:
    import base64

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    exp = int(time.time()) + 3600
    claims = {"iss": K8S_ISSUER, "sub": f"system:serviceaccount:bench:{account}", "exp": exp}
    return f"{part({'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2ln"


class CitadelUnderTest:
    """``citadel serve`` with its TokenReviews answered by a loopback fake API server.

    By default each server gets its own API server and a SQLite database in ``directory``.
    Replicas share one: pass the ``api`` and its ``book``, a ``db_url`` and a ``keys_dir``
    (linked as ``<data dir>/keys``, so they sign with the same authorities).
    """

    def __init__(
        self,
        directory: Path,
        workers: int,
        extra: Sequence[str] = (),
        *,
        api: FakeKubeApiServer | None = None,
        book: TokenReviewBook | None = None,
        db_url: str | None = None,
        keys_dir: Path | None = None,
        metrics: bool = False,
    ) -> None:
        self.directory = directory
        self.owns_api = api is None
        self.api = (
            api if api is not None else FakeKubeApiServer(required_token=CA_API_TOKEN).start()
        )
        self.book = book if book is not None else self.api.serve_token_reviews()
        token_file = directory / "ca-token"
        token_file.write_text(CA_API_TOKEN)
        self.ready = directory / "ready.json"
        self.env = {**os.environ, "CITADEL_KEY_PASSPHRASE": "bench"}
        self.data = directory / "data"
        self.db_url = db_url or f"sqlite:///{self.data / 'citadel.db'}"
        if keys_dir is not None:
            keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.data.mkdir(mode=0o700, parents=True, exist_ok=True)
            (self.data / "keys").symlink_to(keys_dir, target_is_directory=True)
        global_options = ["--data-dir", str(self.data)]
        if db_url is not None:
            global_options += ["--db-url", db_url]
        self.global_options = global_options
        log = (directory / "citadel.log").open("wb")
        self.process = subprocess.Popen(
            [CITADEL, *global_options, "serve", "--workers", str(workers),
             "--listen", "127.0.0.1:0", "--mtls-listen", "off",
             "--metrics-listen", "127.0.0.1:0" if metrics else "off",
             "--rate", "0", "--identity-rate", "0", "--log-level", "warning",
             "--kube-api-server", self.api.url, "--kube-token-file", str(token_file),
             "--kube-issuer", K8S_ISSUER, "--ready-file", str(self.ready), *extra],
            stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while not self.ready.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((directory / "citadel.log").read_text()[-2000:])
            time.sleep(0.1)
        ready = json.loads(self.ready.read_text())
        self.port = int(ready["port"])
        self.metrics_port: int | None = ready.get("metrics_port")
        roots = subprocess.run(
            [CITADEL, *global_options, "bundle", "show"],
            capture_output=True, env=self.env, check=True, timeout=60,
        )  # fmt: skip
        self.root_pem = roots.stdout

    def payloads(self, csrs: dict[str, list[str]]) -> list[tuple[str, str]]:
        tokens = {}
        for account in csrs:
            tokens[account] = _token(account)
            self.book.allow(tokens[account], f"system:serviceaccount:bench:{account}")
        return [
            (tokens[account], pem)
            for j in range(CSRS_PER_IDENTITY)
            for account, pems in csrs.items()
            for pem in pems[j : j + 1]
        ]

    def metric(self, name: str, **labels: str) -> float:
        """A sample of this server's /metrics (0 when absent; needs ``metrics=True``)."""
        import urllib.request

        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    return float(sample.value)
        return 0.0

    def stop(self) -> tuple[int, bool]:
        """Stop the server (and its API server, if its own); count and verify the audit."""
        _stop(self.process)
        if self.owns_api:
            self.api.stop()
        from citadel.store.repository import Repository

        repository = Repository.open(self.db_url)
        try:
            issued = 0
            after = 0
            while True:
                page = repository.list_audit(after_seq=after, limit=10_000)
                if not page:
                    break
                issued += sum(1 for event in page if event.action == "issue")
                after = page[-1].seq
            verified = repository.verify_audit_chain().ok
        finally:
            repository.close()
        return issued, verified


# --- the report ----------------------------------------------------------------------------------


def _row(m: Measurement) -> str:
    return (
        f"{m.target:<22} {m.inflight:>9} {m.rate:>9.0f} {m.p50_ms:>8.2f} {m.p99_ms:>8.2f} "
        f"{m.server_cpu_ms_per_request:>11.2f} {m.loader_cpu_ms_per_request:>11.2f} {m.errors:>7}"
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_csr_api", description=__doc__.split("\n")[0])
    parser.add_argument("--inflight", default="8,64")
    parser.add_argument(
        "--workers",
        default=str(os.cpu_count() or 1),
        help="citadel serve --workers (comma-separated to compare several)",
    )
    parser.add_argument("--loaders", type=int, default=2, help="load-generator processes")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args(list(argv))
    inflights = [int(x) for x in args.inflight.split(",")]
    worker_counts = [int(x) for x in args.workers.split(",")]
    if not Path("/usr/bin/cfssl").exists():
        print("cfssl is not installed (/usr/bin/cfssl); apt-get install golang-cfssl")
        return 1
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-csr-api-") as tmp:
        base = Path(tmp)
        csrs = make_csrs()
        cfssl_payloads = [
            ("", json.dumps({"certificate_request": pem}))
            for pems in csrs.values() for pem in pems
        ]  # fmt: skip
        cf_dir = base / "cfssl"
        cf_dir.mkdir()
        cf_root = cfssl_ca(cf_dir)
        cfssl, cf_port = start_cfssl(cf_dir)
        try:
            for inflight in inflights:
                results.append(
                    measure("cfssl serve", "cfssl", cf_port, cf_root, cfssl_payloads,
                            inflight=inflight, loaders=args.loaders, warmup=args.warmup,
                            seconds=args.seconds, server_pid=cfssl.pid)
                )  # fmt: skip
        finally:
            _stop(cfssl)
        audit_notes = []
        for workers in worker_counts:
            directory = base / f"citadel-{workers}"
            directory.mkdir()
            server = CitadelUnderTest(directory, workers)
            try:
                payloads = server.payloads(csrs)
                for inflight in inflights:
                    results.append(
                        measure(f"citadel ({workers} worker{'s' if workers > 1 else ''})", "grpc",
                                server.port, server.root_pem, payloads, inflight=inflight,
                                loaders=args.loaders, warmup=args.warmup, seconds=args.seconds,
                                server_pid=server.process.pid)
                    )  # fmt: skip
            finally:
                issued, chain_ok = server.stop()
            audit_notes.append(
                f"citadel ({workers} workers): {issued} issuance audit rows committed, "
                f"audit chain {'verified' if chain_ok else 'BROKEN'}"
            )
    print(f"CSR API, ECDSA P-256, TLS, {os.cpu_count()} CPUs shared by servers and load")
    print(f"{'target':<22} {'in flight':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'srv cpu ms':>11} {'load cpu ms':>11} {'errors':>7}")  # fmt: skip
    for m in results:
        print(_row(m))
    for note in audit_notes:
        print(note)
    failed = False
    for m in results:
        if m.first_error:
            print(f"first error from {m.target} @ {m.inflight}: {m.first_error[:200]}")
    cfssl_by_inflight = {m.inflight: m for m in results if m.target == "cfssl serve"}
    for m in results:
        if m.target == "cfssl serve":
            continue
        reference = cfssl_by_inflight[m.inflight]
        ratio = m.rate / reference.rate if reference.rate else float("nan")
        verdict = "ok" if ratio >= RATIO_TARGET else "BELOW TARGET"
        print(f"{m.target} @ {m.inflight} in flight: {ratio:.2f}x cfssl ({verdict}, target "
              f">= {RATIO_TARGET}x)")  # fmt: skip
        if m.inflight == 8:
            p99_verdict = "ok" if m.p99_ms <= P99_TARGET_MS else "ABOVE TARGET"
            print(f"{m.target} @ 8 in flight: p99 {m.p99_ms:.2f} ms ({p99_verdict}, target "
                  f"<= {P99_TARGET_MS:.0f} ms)")  # fmt: skip
        failed = failed or m.errors > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
