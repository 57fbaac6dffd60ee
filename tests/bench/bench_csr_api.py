"""CSR API throughput and latency: ``citadel serve`` next to ``cfssl serve``, in one run.

Both servers sign the same pre-generated ECDSA P-256 CSRs over TLS, with an ECDSA P-256
intermediate made by Citadel's own templates:

* citadel: the real ``citadel serve`` (gRPC over TLS, Kubernetes service-account tokens
  checked through a loopback TokenReview API and cached, strict CSR checks, the issuance
  and its audit row committed to SQLite before the answer), ``--workers`` processes.
* cfssl: ``cfssl serve`` with ``-tls-cert``, ``POST /api/v1/cfssl/sign`` (no database).

The load comes from separate processes (``--loaders``), each running blocking clients in
threads (one gRPC channel or one keep-alive HTTPS connection per thread), so that
``in flight`` requests are outstanding at all times. Requests that start inside the
measurement window count; latency is client-side, per request.

    python -m tests.bench.bench_csr_api [--inflight 8,64] [--workers 2] [--seconds 6]

Targets: citadel >= 0.6x cfssl's requests/s, and p99 <= 10 ms at 8 in flight.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes

from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_templates import CaSpec, LeafSpec, ca_builder, leaf_builder

TRUST_DOMAIN = TrustDomain("cluster.local")
K8S_ISSUER = "https://kubernetes.default.svc.cluster.local"
IDENTITIES = 64
CSRS_PER_IDENTITY = 8
RATIO_TARGET = 0.6
P99_TARGET_MS = 10.0
CITADEL = str(Path(sys.executable).with_name("citadel"))


# --- load generation (runs in separate processes) -------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    kind: str  # "grpc" | "cfssl"
    port: int
    root_pem: bytes
    payloads: list[tuple[str, str]]  # grpc: (token, csr_pem); cfssl: ("", json body)
    threads: int
    window_start: float  # wall-clock seconds
    window_end: float


@dataclass(frozen=True)
class LoadResult:
    latencies: list[float]
    errors: int
    cpu_seconds: float
    first_error: str


def _grpc_worker(spec: LoadSpec, index: int, out: list[float], errors: list[str]) -> None:
    import grpc

    from citadel._proto import istio_ca_pb2, istio_ca_pb2_grpc

    credentials = grpc.ssl_channel_credentials(root_certificates=spec.root_pem)
    channel = grpc.secure_channel(
        f"127.0.0.1:{spec.port}",
        credentials,
        options=[
            ("grpc.ssl_target_name_override", "localhost"),
            ("grpc.use_local_subchannel_pool", 1),
        ],
    )
    stub = istio_ca_pb2_grpc.IstioCertificateServiceStub(channel)
    mine = spec.payloads[index :: spec.threads] or spec.payloads
    requests = [
        (istio_ca_pb2.IstioCertificateRequest(csr=csr), (("authorization", f"Bearer {token}"),))
        for token, csr in mine
    ]
    n = 0
    while True:
        started = time.time()
        if started >= spec.window_end:
            break
        request, metadata = requests[n % len(requests)]
        n += 1
        t0 = time.perf_counter()
        try:
            answer = stub.CreateCertificate(request, metadata=metadata, timeout=30)
            ok = len(answer.cert_chain) >= 2
            if not ok:
                errors.append("answer with a chain shorter than 2")
        except grpc.RpcError as exc:
            ok = False
            errors.append(f"{exc.code()}: {exc.details()}")
        elapsed = time.perf_counter() - t0
        if ok and started >= spec.window_start:
            out.append(elapsed)
    channel.close()


def _cfssl_worker(spec: LoadSpec, index: int, out: list[float], errors: list[str]) -> None:
    context = ssl.create_default_context(cadata=spec.root_pem.decode())
    connection = http.client.HTTPSConnection("localhost", spec.port, context=context, timeout=30)
    bodies = [body.encode() for _, body in spec.payloads[index :: spec.threads] or spec.payloads]
    headers = {"Content-Type": "application/json"}
    n = 0
    while True:
        started = time.time()
        if started >= spec.window_end:
            break
        body = bodies[n % len(bodies)]
        n += 1
        t0 = time.perf_counter()
        try:
            connection.request("POST", "/api/v1/cfssl/sign", body, headers)
            response = connection.getresponse()
            data = response.read()
            ok = response.status == 200 and b'"success":true' in data
            if not ok:
                errors.append(f"HTTP {response.status}: {data[:120]!r}")
        except (OSError, http.client.HTTPException) as exc:
            ok = False
            errors.append(repr(exc))
            connection.close()
        elapsed = time.perf_counter() - t0
        if ok and started >= spec.window_start:
            out.append(elapsed)
    connection.close()


def load_process(spec: LoadSpec, results: Queue[LoadResult]) -> None:
    worker = _grpc_worker if spec.kind == "grpc" else _cfssl_worker
    latencies: list[list[float]] = [[] for _ in range(spec.threads)]
    errors: list[list[str]] = [[] for _ in range(spec.threads)]
    cpu0 = time.process_time()
    threads = [
        threading.Thread(target=worker, args=(spec, i, latencies[i], errors[i]))
        for i in range(spec.threads)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    flat_errors = [e for chunk in errors for e in chunk]
    results.put(
        LoadResult(
            latencies=[x for chunk in latencies for x in chunk],
            errors=len(flat_errors),
            cpu_seconds=time.process_time() - cpu0,
            first_error=flat_errors[0] if flat_errors else "",
        )
    )


# --- measurement ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    target: str
    inflight: int
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu_ms_per_request: float
    loader_cpu_ms_per_request: float
    first_error: str


def _process_cpu_seconds(pids: Sequence[int]) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def _descendants(pid: int) -> list[int]:
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found.extend(_descendants(int(child)))
    return found


def measure(
    target: str,
    kind: str,
    port: int,
    root_pem: bytes,
    payloads: list[tuple[str, str]],
    *,
    inflight: int,
    loaders: int,
    warmup: float,
    seconds: float,
    server_pid: int,
) -> Measurement:
    context = multiprocessing.get_context("spawn")
    results: Queue[LoadResult] = context.Queue()
    loaders = max(1, min(loaders, inflight))
    shares = [inflight // loaders + (1 if i < inflight % loaders else 0) for i in range(loaders)]
    start = time.time() + 3.0  # time for the loader processes to start
    window_start, window_end = start + warmup, start + warmup + seconds
    processes = []
    offset = 0
    for share in shares:
        spec = LoadSpec(
            kind=kind, port=port, root_pem=root_pem,
            payloads=payloads[offset:] + payloads[:offset], threads=share,
            window_start=window_start, window_end=window_end,
        )  # fmt: skip
        offset += share
        process = context.Process(target=load_process, args=(spec, results))
        process.start()
        processes.append(process)
    pids = _descendants(server_pid)
    time.sleep(max(0.0, window_start - time.time()))
    cpu_before = _process_cpu_seconds(pids)
    time.sleep(max(0.0, window_end - time.time()))
    cpu_after = _process_cpu_seconds(pids)
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    latencies = sorted(x for o in outcomes for x in o.latencies)
    count = len(latencies)
    errors = sum(o.errors for o in outcomes)
    loader_cpu = sum(o.cpu_seconds for o in outcomes) * seconds / (seconds + warmup + 3)
    return Measurement(
        target=target,
        inflight=inflight,
        rate=count / seconds,
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99_ms=latencies[min(count - 1, int(count * 0.99))] * 1000 if latencies else float("nan"),
        errors=errors,
        server_cpu_ms_per_request=(cpu_after - cpu_before) * 1000 / max(1, count),
        loader_cpu_ms_per_request=loader_cpu * 1000 / max(1, count),
        first_error=next((o.first_error for o in outcomes if o.first_error), ""),
    )


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
    def __init__(self, directory: Path, workers: int, extra: Sequence[str] = ()) -> None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
        from tests.fakes.kube_api_server import FakeKubeApiServer

        self.directory = directory
        self.api = FakeKubeApiServer(required_token="bench-ca-token").start()
        self.book = self.api.serve_token_reviews()
        token_file = directory / "ca-token"
        token_file.write_text("bench-ca-token")
        self.ready = directory / "ready.json"
        self.env = {**os.environ, "CITADEL_KEY_PASSPHRASE": "bench"}
        self.data = directory / "data"
        log = (directory / "citadel.log").open("wb")
        self.process = subprocess.Popen(
            [CITADEL, "--data-dir", str(self.data), "serve", "--workers", str(workers),
             "--listen", "127.0.0.1:0", "--mtls-listen", "off", "--metrics-listen", "off",
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
        self.port = int(json.loads(self.ready.read_text())["port"])
        roots = subprocess.run(
            [CITADEL, "--data-dir", str(self.data), "bundle", "show"],
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

    def stop(self) -> tuple[int, bool]:
        _stop(self.process)
        self.api.stop()
        from citadel.store.repository import Repository

        repository = Repository.open(f"sqlite:///{self.data / 'citadel.db'}")
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
