"""ext_authz overhead through a real Envoy: the same server Envoy path with and without it.

Everything is real: ``citadel serve`` (the CA), ``citadel-agent run`` (the server Envoy's
certificate over SDS), ``citadel authz serve`` on a Unix socket (policy: allow the client's
SPIFFE ID), and the server Envoy of ``deploy/envoy/server-sidecar-ext-authz.yaml`` with one
extra route, ``/direct/``, whose ext_authz filter is disabled per route
(``ExtAuthzPerRoute.disabled``); every other path is checked. The app behind it keeps its
connections alive.

One client (the client's SPIFFE ID, a certificate from ``citadel cert mint``) sends
sequential requests on one keep-alive mTLS connection, alternating between ``/checked/``
and ``/direct/`` (the order swapped every pair, after a warm-up). Overhead = p50(checked) -
p50(direct). Target: <= 1.5 ms. Envoy's ext_authz counters confirm that every checked
request, and no direct one, was decided by the service.

    python -m tests.bench.bench_ext_authz [--requests 2000] [--warmup 200]
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OVERHEAD_TARGET_MS = 1.5
CHECKED, DIRECT = "/checked/", "/direct/"


@dataclass(frozen=True)
class Figures:
    checked_ms: list[float]
    direct_ms: list[float]
    authz_calls: int
    authz_errors: int
    non_200: int


def _percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _client(port: int, roots: Path, cert: Path, key: Path) -> http.client.HTTPSConnection:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(cafile=str(roots))
    context.load_cert_chain(str(cert), str(key))
    return http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)


def _timed_get(connection: http.client.HTTPSConnection, path: str) -> tuple[int, float]:
    started = time.perf_counter()
    connection.request("GET", path)
    reply = connection.getresponse()
    reply.read()
    return reply.status, (time.perf_counter() - started) * 1000


def measure(envoy: Any, client: http.client.HTTPSConnection, requests: int, warmup: int) -> Figures:
    def stat(name: str) -> int:
        return int(envoy.stat(f"http.inbound.ext_authz.{name}"))

    for index in range(warmup):
        for path in (CHECKED, DIRECT):
            status, _ = _timed_get(client, f"{path}warmup/{index}")
            if status != 200:
                raise RuntimeError(f"warm-up {path}: HTTP {status}")
    calls_before, errors_before = stat("ok") + stat("denied"), stat("error")
    checked: list[float] = []
    direct: list[float] = []
    non_200 = 0
    for index in range(requests):
        order = (CHECKED, DIRECT) if index % 2 == 0 else (DIRECT, CHECKED)
        for path in order:
            status, elapsed = _timed_get(client, f"{path}{index}")
            non_200 += status != 200
            (checked if path == CHECKED else direct).append(elapsed)
    return Figures(
        checked_ms=checked,
        direct_ms=direct,
        authz_calls=stat("ok") + stat("denied") - calls_before,
        authz_errors=stat("error") - errors_before,
        non_200=non_200,
    )


def run(requests: int, warmup: int) -> Figures:
    from tests.integration.authz_envoy.policies import allow_principals
    from tests.integration.authz_envoy.stack import (
        CLIENT_ID,
        SERVER_ID,
        Started,
        server_bootstrap,
        start_agent,
        start_authz,
        start_ca,
        write_policy_files,
    )
    from tests.integration.node_agent.mesh import App
    from tests.peers.envoy import EnvoyProcess, envoy_binary

    envoy_binary()
    base = Path(tempfile.mkdtemp(prefix="az-bench-", dir="/tmp"))
    started = Started()
    try:
        ca, roots = start_ca(started, base)
        minted = ca.mint(CLIENT_ID, base / "client")
        start_agent(started, base, ca, "server", SERVER_ID, ttl_seconds=3600, log_level="warning")
        app = started.add(App(keep_alive=True))
        policy_dir = base / "policies"
        write_policy_files(policy_dir, {"callers.yaml": allow_principals(CLIENT_ID)})
        authz = start_authz(started, base, policy_dir)
        document = server_bootstrap(
            sds_socket=base / "server" / "sds.sock",
            authz_socket=authz.socket_path,
            app_port=app.port,
            bypass_prefix=DIRECT,
        )
        envoy = started.add(EnvoyProcess(document, base / "envoy", "bench-envoy")).start()
        port = envoy.listener_port("inbound_mtls")
        client = _client(port, roots, minted / "cert-chain.pem", minted / "key.pem")
        deadline = time.monotonic() + 20
        while True:  # until the agent's certificate reached Envoy
            try:
                if _timed_get(client, CHECKED)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                client.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server Envoy never answered:\n{envoy.log_tail()}")
            time.sleep(0.1)
        try:
            return measure(envoy, client, requests, warmup)
        finally:
            client.close()
    finally:
        started.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ext_authz", description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="per path (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="per path (default 200)")
    args = parser.parse_args(list(argv or []))
    figures = run(args.requests, args.warmup)
    rows = {
        "with ext_authz": figures.checked_ms,
        "without (per-route disabled)": figures.direct_ms,
    }
    p50 = {name: statistics.median(values) for name, values in rows.items()}
    p99 = {name: _percentile(values, 0.99) for name, values in rows.items()}
    overhead = p50["with ext_authz"] - p50["without (per-route disabled)"]
    overhead_p99 = p99["with ext_authz"] - p99["without (per-route disabled)"]
    ok = (
        overhead <= OVERHEAD_TARGET_MS
        and figures.non_200 == 0
        and figures.authz_errors == 0
        and figures.authz_calls == len(figures.checked_ms)
    )
    print(f"{'path (sequential, one keep-alive mTLS client)':46} {'p50 ms':>8} {'p99 ms':>8}")
    for name, values in rows.items():
        print(f"{name:46} {p50[name]:>8.3f} {p99[name]:>8.3f}   ({len(values)} requests)")
    print(
        f"{'ext_authz overhead (difference)':46} {overhead:>8.3f} {overhead_p99:>8.3f}"
        f"   p50 <= {OVERHEAD_TARGET_MS} ms {'OK' if ok else 'MISSED'}"
    )
    print(
        f"{'ext_authz calls / errors / non-200 replies':46} "
        f"{figures.authz_calls}/{figures.authz_errors}/{figures.non_200}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
