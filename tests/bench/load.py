"""The CSR load generator shared by the API benchmarks (``bench_csr_api``, ``bench_replicas``).

Load comes from separate processes (spawned), each running blocking clients in threads (one
gRPC channel or one keep-alive HTTPS connection per thread), so that ``in flight`` requests
are outstanding at all times:

* window mode: every thread cycles through its share of the payloads; requests that start
  inside the measurement window count, latency is client-side, per request;
* once mode (``LoadSpec.once``): every payload is sent exactly once, starting together at
  ``window_start``; the result carries when the last answer arrived (a mass start).

The loaders of one measurement may target several servers (``ports``, round robin per
loader); server CPU is read from ``/proc`` for the given PIDs and their descendants.
"""

from __future__ import annotations

import http.client
import multiprocessing
import os
import ssl
import statistics
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from pathlib import Path

__all__ = [
    "LoadResult",
    "LoadSpec",
    "MassStart",
    "Measurement",
    "load_process",
    "mass_start",
    "measure",
    "process_cpu_seconds",
    "process_tree",
]


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
    once: bool = False  # send every payload exactly once, from window_start on


@dataclass(frozen=True)
class LoadResult:
    latencies: list[float]
    errors: int
    cpu_seconds: float
    first_error: str
    finished_at: float = 0.0  # wall clock of this loader's last answer
    error_kinds: dict[str, int] = field(default_factory=dict)


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
    mine = spec.payloads[index :: spec.threads]
    if not mine and spec.once:
        return
    requests = [
        (istio_ca_pb2.IstioCertificateRequest(csr=csr), (("authorization", f"Bearer {token}"),))
        for token, csr in mine or spec.payloads
    ]
    if spec.once:
        time.sleep(max(0.0, spec.window_start - time.time()))
    n = 0
    while True:
        started = time.time()
        if (n >= len(requests)) if spec.once else (started >= spec.window_end):
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
        if ok and (spec.once or started >= spec.window_start):
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


def _error_kind(error: str) -> str:
    return error.split(":", 1)[0][:60]


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
    finished_at = time.time()
    flat_errors = [e for chunk in errors for e in chunk]
    kinds: dict[str, int] = {}
    for error in flat_errors:
        kinds[_error_kind(error)] = kinds.get(_error_kind(error), 0) + 1
    results.put(
        LoadResult(
            latencies=[x for chunk in latencies for x in chunk],
            errors=len(flat_errors),
            cpu_seconds=time.process_time() - cpu0,
            first_error=flat_errors[0] if flat_errors else "",
            finished_at=finished_at,
            error_kinds=kinds,
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


def process_cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (gone processes count 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found.extend(process_tree(int(child)))
    return found


def _pids(server_pid: int | Sequence[int]) -> list[int]:
    roots = [server_pid] if isinstance(server_pid, int) else list(server_pid)
    return [pid for root in roots for pid in process_tree(root)]


def _start_loaders(
    kind: str,
    ports: Sequence[int],
    root_pem: bytes,
    payloads: list[tuple[str, str]],
    *,
    inflight: int,
    loaders: int,
    window_start: float,
    window_end: float,
    once: bool,
) -> tuple[list[multiprocessing.process.BaseProcess], Queue[LoadResult]]:
    """Spawn the loader processes; loader ``i`` targets ``ports[i % len(ports)]``. In once
    mode the payloads are divided between the loaders (each sent once); otherwise every
    loader cycles through all of them from its own offset."""
    context = multiprocessing.get_context("spawn")
    results: Queue[LoadResult] = context.Queue()
    loaders = max(1, min(loaders, inflight))
    shares = [inflight // loaders + (1 if i < inflight % loaders else 0) for i in range(loaders)]
    processes: list[multiprocessing.process.BaseProcess] = []
    offset = 0
    for index, share in enumerate(shares):
        mine = payloads[index::loaders] if once else payloads[offset:] + payloads[:offset]
        spec = LoadSpec(
            kind=kind, port=ports[index % len(ports)], root_pem=root_pem, payloads=mine,
            threads=share, window_start=window_start, window_end=window_end, once=once,
        )  # fmt: skip
        offset += share
        process = context.Process(target=load_process, args=(spec, results))
        process.start()
        processes.append(process)
    return processes, results


def measure(
    target: str,
    kind: str,
    port: int | Sequence[int],
    root_pem: bytes,
    payloads: list[tuple[str, str]],
    *,
    inflight: int,
    loaders: int,
    warmup: float,
    seconds: float,
    server_pid: int | Sequence[int],
) -> Measurement:
    """Requests/s and latency with ``inflight`` requests outstanding for ``seconds``.

    ``port`` / ``server_pid`` may list several servers (e.g. CA replicas): the loaders are
    spread over the ports and the CPU of every server process tree is added up.
    """
    ports = [port] if isinstance(port, int) else list(port)
    start = time.time() + 3.0  # time for the loader processes to start
    window_start, window_end = start + warmup, start + warmup + seconds
    processes, results = _start_loaders(
        kind, ports, root_pem, payloads, inflight=inflight, loaders=loaders,
        window_start=window_start, window_end=window_end, once=False,
    )  # fmt: skip
    pids = _pids(server_pid)
    time.sleep(max(0.0, window_start - time.time()))
    cpu_before = process_cpu_seconds(pids)
    time.sleep(max(0.0, window_end - time.time()))
    cpu_after = process_cpu_seconds(pids)
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


@dataclass(frozen=True)
class MassStart:
    """Every payload sent once, all starting together.

    Attributes:
        seconds: from the common start to the last answer.
        certified: answers with a certificate chain.
        p50_ms / p99_ms: per-request latency.
        server_cpu_seconds: CPU of the server process trees during the run.
        loader_cpu_seconds: CPU of the loader processes (whole life, start-up included).
        error_kinds: failed requests by status.
    """

    seconds: float
    certified: int
    errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_seconds: float
    loader_cpu_seconds: float
    first_error: str
    error_kinds: dict[str, int]


def mass_start(
    ports: Sequence[int],
    root_pem: bytes,
    payloads: list[tuple[str, str]],
    *,
    inflight: int,
    loaders: int,
    server_pids: Sequence[int],
    lead_time: float = 4.0,
) -> MassStart:
    """Send every (token, CSR) once over ``inflight`` concurrent clients spread over
    ``ports``; time from the common start to the last answer."""
    start = time.time() + lead_time  # the loaders import grpc and build requests first
    processes, results = _start_loaders(
        "grpc", ports, root_pem, payloads, inflight=inflight, loaders=loaders,
        window_start=start, window_end=start, once=True,
    )  # fmt: skip
    pids = _pids(server_pids)
    time.sleep(max(0.0, start - time.time()))
    cpu_before = process_cpu_seconds(pids)
    outcomes = [results.get(timeout=600) for _ in processes]
    cpu_after = process_cpu_seconds(pids)
    for process in processes:
        process.join(30)
    latencies = sorted(x for o in outcomes for x in o.latencies)
    count = len(latencies)
    kinds: dict[str, int] = {}
    for outcome in outcomes:
        for kind, n in outcome.error_kinds.items():
            kinds[kind] = kinds.get(kind, 0) + n
    return MassStart(
        seconds=max(o.finished_at for o in outcomes) - start,
        certified=count,
        errors=sum(o.errors for o in outcomes),
        p50_ms=statistics.median(latencies) * 1000 if latencies else float("nan"),
        p99_ms=latencies[min(count - 1, int(count * 0.99))] * 1000 if latencies else float("nan"),
        server_cpu_seconds=cpu_after - cpu_before,
        loader_cpu_seconds=sum(o.cpu_seconds for o in outcomes),
        first_error=next((o.first_error for o in outcomes if o.first_error), ""),
        error_kinds=kinds,
    )
