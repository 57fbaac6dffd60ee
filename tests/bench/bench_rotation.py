"""CSR throughput while the CA rotates, next to steady state; and how fast a revocation
reaches the checks a serving process makes.

* steady: ``parse_csr`` + ``validate_workload_csr`` + ``Issuer.issue`` (audit row committed
  to SQLite) from several threads, no rotation.
* rotating: the same load while another thread keeps rotating the root through the
  repository, as the CLI would (prepare, activate, roll back, forced retire, one step every
  ``--step-interval``; far more often than any real CA rotates), and the
  ``AuthorityWatcher`` swaps the issuer's authorities within 100 ms. Every issued chain is
  checked against the bundle the issuer returned with it; any failure is counted. A
  retirement counts the old root's remaining leaves (one indexed query by issuer and
  expiry), which is part of the cost measured.
* revocation: the time from ``revoke`` in another repository handle (another process) to
  the first ``is_certificate_revoked`` refusal in the serving process's lifecycle (watch
  interval 100 ms), and to the first CRL that lists the serial.
* revocation at Envoy, with DEFAULT settings: the real ``citadel serve`` (authority watch
  3 s), the real agent (bundle poll 2 s) and a real server Envoy; the time from the moment
  ``citadel cert revoke`` has committed (the command returned) to the first refused new
  handshake with the revoked client certificate (probed every 50 ms).

    python -m tests.bench.bench_rotation [--certs 1500] [--threads 8] [--runs 5]
                                         [--step-interval 0.25] [--revocations 10]
                                         [--envoy-revocations 5]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

from cryptography import x509

from citadel.ca.authority_errors import RotationError
from citadel.ca.authority_watch import AuthorityWatcher
from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, init_ca, open_ca
from citadel.ca.issuer import SignParams
from citadel.ca.lifecycle import LifecycleOptions, start_ca_lifecycle
from citadel.ca.revocation import Revoker
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.slots import Slot
from citadel.ca.rotation.steps import AuthorityRotation, StepResult
from citadel.identity.chain import verify_svid_chain
from citadel.identity.csr import build_csr, csr_to_pem, parse_csr, validate_workload_csr
from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.pem import load_certificates_pem, serial_hex
from citadel.identity.spiffe_id import TrustDomain

TRUST_DOMAIN = TrustDomain("bench.local")


def make_csrs(count: int) -> list[bytes]:
    keys = [generate_private_key(KeyType.EC_P256) for _ in range(16)]
    return [
        csr_to_pem(build_csr(keys[i % 16], TRUST_DOMAIN.spiffe_id(f"/ns/bench/sa/w{i}"))).encode()
        for i in range(count)
    ]


class Load:
    """Issue every CSR from ``threads`` threads; verify each chain against its own bundle."""

    def __init__(self, ca: CaContext, csrs: Sequence[bytes], threads: int) -> None:
        self.ca, self.csrs, self.threads = ca, csrs, threads
        self.failures = 0
        self._lock = threading.Lock()

    def _one(self, pem: bytes) -> None:
        info = validate_workload_csr(parse_csr(pem))
        chain = self.ca.issuer.issue(
            info.public_key, SignParams(spiffe_id=info.spiffe_id, requester="bench")
        )
        try:
            verify_svid_chain(chain.leaf, chain.intermediates, chain.roots, at=self.ca.clock.now())
        except Exception:
            with self._lock:
                self.failures += 1

    def run(self) -> float:
        shares = [self.csrs[i :: self.threads] for i in range(self.threads)]
        errors: list[BaseException] = []

        def worker(share: Sequence[bytes]) -> None:
            try:
                for pem in share:
                    self._one(pem)
            except BaseException as exc:
                errors.append(exc)

        pool = [threading.Thread(target=worker, args=(s,)) for s in shares]
        began = time.perf_counter()
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()
        elapsed = time.perf_counter() - began
        if errors:
            raise errors[0]
        return len(self.csrs) / elapsed


class Rotator:
    """Keeps rotating the root in the background: prepare, activate, roll back."""

    def __init__(self, ca: CaContext, step_interval: float) -> None:
        self.step_interval = step_interval
        self.rotation = AuthorityRotation(
            repository=ca.repository,
            key_manager=ca.key_manager,
            clock=ca.clock,
            config=ca.config,
            policy=RotationPolicy(propagation_delay=timedelta(0)),
        )
        self.watcher = AuthorityWatcher(
            repository=ca.repository,
            key_manager=ca.key_manager,
            issuer=ca.issuer,
            clock=ca.clock,
            trust_domain=TRUST_DOMAIN,
            interval=timedelta(milliseconds=100),
        )
        self.steps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        cycle: list[Callable[[], StepResult]] = [
            lambda: self.rotation.prepare(Slot.ROOT),
            lambda: self.rotation.activate(Slot.ROOT),
            lambda: self.rotation.rollback(Slot.ROOT),
            lambda: self.rotation.retire(Slot.ROOT, force=True),
        ]
        while not self._stop.is_set():
            for step in cycle:
                if self._stop.wait(self.step_interval):
                    return
                try:
                    step()
                except RotationError:  # a run stopped mid-cycle: carry on from here
                    continue
                self.steps += 1

    def __enter__(self) -> Rotator:
        self.watcher.prime()
        self.watcher.start()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.watcher.stop()


def revocation_latency(config: CaConfig, samples: int) -> tuple[list[float], list[float]]:
    index_ms: list[float] = []
    crl_ms: list[float] = []
    with open_ca(config) as served, open_ca(config) as other:
        lifecycle = start_ca_lifecycle(
            served,
            LifecycleOptions(
                watch_interval=timedelta(milliseconds=100),
                rotation=RotationPolicy(automatic=False),
            ),
        )
        try:
            revoker = Revoker(repository=other.repository, clock=other.clock)
            for _ in range(samples):
                chain = served.issuer.issue(
                    generate_private_key().public_key(),
                    SignParams(spiffe_id=TRUST_DOMAIN.spiffe_id("/ns/r/sa/r"), requester="bench"),
                )
                began = time.perf_counter()
                revoker.revoke_serial(chain.serial_hex, "keyCompromise")
                seen_index = seen_crl = None
                while seen_index is None or seen_crl is None:
                    now = time.perf_counter()
                    if now - began > 10:
                        raise RuntimeError("revocation did not propagate within 10 s")
                    if seen_index is None and lifecycle.is_certificate_revoked(chain.leaf):
                        seen_index = now
                    if seen_crl is None and _listed(lifecycle.current_crls(), chain.leaf):
                        seen_crl = now
                    time.sleep(0.005)
                index_ms.append((seen_index - began) * 1000)
                crl_ms.append((seen_crl - began) * 1000)
        finally:
            lifecycle.close()
    return index_ms, crl_ms


def _listed(crls: Sequence[bytes], leaf: x509.Certificate) -> bool:
    return any(
        x509.load_der_x509_crl(der).get_revoked_certificate_by_serial_number(leaf.serial_number)
        for der in crls
    )


def envoy_revocation_latency(samples: int) -> list[float]:
    """Seconds from a committed ``citadel cert revoke`` to the first refused handshake at a
    real Envoy fed by a real agent (every setting at its default)."""
    from tests.integration.rotation_envoy.stack import CLIENT_ID, rotation_mesh

    seconds: list[float] = []
    with rotation_mesh() as mesh:
        roots = mesh.base / "roots-now.pem"
        roots.write_bytes(mesh.ca.root_bundle_pem())
        for index in range(samples):
            client = mesh.ca.mint(CLIENT_ID, mesh.base / f"revoked-{index}")
            leaf = load_certificates_pem((client / "cert-chain.pem").read_bytes())[0]
            deadline = time.monotonic() + 30
            while mesh.refused(client, roots):  # wait until the server Envoy accepts it
                if time.monotonic() > deadline:
                    raise RuntimeError("the server Envoy never accepted a fresh certificate")
                time.sleep(0.1)
            mesh.ca.cli("cert", "revoke", serial_hex(leaf), "--reason", "keyCompromise")
            committed = time.monotonic()
            while not mesh.refused(client, roots):
                if time.monotonic() - committed > 30:
                    raise RuntimeError("the revoked certificate was still accepted after 30 s")
                time.sleep(0.05)
            seconds.append(time.monotonic() - committed)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--certs", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--revocations", type=int, default=10)
    parser.add_argument(
        "--step-interval", type=float, default=0.25, help="seconds between rotation steps"
    )
    parser.add_argument(
        "--envoy-revocations", type=int, default=5, help="samples through a real Envoy (0: skip)"
    )
    args = parser.parse_args(argv)
    logging.getLogger("citadel").setLevel(logging.ERROR)  # forced retirements warn by design
    csrs = make_csrs(args.certs)
    steady: list[float] = []
    rotating: list[float] = []
    failures = steps = 0
    with tempfile.TemporaryDirectory(prefix="citadel-bench-") as tmp:
        config = CaConfig(
            data_dir=Path(tmp) / "data", trust_domain=TRUST_DOMAIN, key_passphrase=b"b"
        )
        with init_ca(config) as ca:
            Load(ca, csrs[:300], args.threads).run()  # warm up
            for run in range(args.runs):
                order = ("steady", "rotating") if run % 2 == 0 else ("rotating", "steady")
                for kind in order:
                    load = Load(ca, csrs, args.threads)
                    if kind == "steady":
                        steady.append(load.run())
                    else:
                        with Rotator(ca, args.step_interval) as rotator:
                            rotating.append(load.run())
                        steps += rotator.steps
                    failures += load.failures
            assert ca.repository.verify_audit_chain().ok
        index_ms, crl_ms = revocation_latency(config, args.revocations)
    print(
        f"CSR throughput, ECDSA P-256, {args.certs} CSRs x {args.runs} runs, {args.threads} threads"
    )
    print(f"{'load':<40} {'median/s':>9} {'min/s':>9} {'max/s':>9}")
    for label, rates in (("steady state", steady), ("while rotating the root", rotating)):
        print(f"{label:<40} {statistics.median(rates):>9.0f} {min(rates):>9.0f} {max(rates):>9.0f}")
    ratio = statistics.median(rotating) / statistics.median(steady)
    print(
        f"ratio rotating / steady (medians): {ratio:.2f}; {steps} rotation steps (one per "
        f"{args.step_interval:g} s) during the rotating runs; chains failing their own bundle: "
        f"{failures}"
    )
    print(
        "revoke -> refused by is_certificate_revoked: "
        f"median {statistics.median(index_ms):.0f} ms, max {max(index_ms):.0f} ms; "
        f"-> listed in a CRL: median {statistics.median(crl_ms):.0f} ms, "
        f"max {max(crl_ms):.0f} ms ({args.revocations} samples, 100 ms watch interval)"
    )
    envoy_failed = False
    if args.envoy_revocations > 0:
        try:
            envoy_s = envoy_revocation_latency(args.envoy_revocations)
        except Exception as exc:  # a missing Envoy or a broken run: say so, fail the bench
            print(f"revoke -> first refused Envoy handshake: n/a ({type(exc).__name__}: {exc})")
            envoy_failed = True
        else:
            print(
                "revoke -> first refused Envoy handshake (defaults: CA watch 3 s, agent poll "
                f"2 s): median {statistics.median(envoy_s):.2f} s, max {max(envoy_s):.2f} s "
                f"({len(envoy_s)} samples; target <= 5 s)"
            )
    return 1 if failures or envoy_failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
