"""In-process signing throughput: Citadel's issuer next to the bare cryptography pipeline.

Both sides start from the same ECDSA P-256 CSR PEMs (generated beforehand, not timed):

* bare: parse the CSR, verify its signature, build an X509-SVID leaf, sign it (P-256).
* citadel: ``parse_csr`` + ``validate_workload_csr`` + ``Issuer.issue`` (template, sign,
  X509-SVID re-validation, the audit row committed to SQLite in a temporary directory via
  group commit) + the PEM chain out, from several threads.

The ratio is citadel / bare, both the median of several runs; the target is >= 0.8.

    python -m tests.bench.bench_signing [--certs 2000] [--threads 32] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, init_ca
from citadel.ca.issuer import SignParams
from citadel.identity.csr import build_csr, csr_to_pem, parse_csr, validate_workload_csr
from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_templates import random_serial

TRUST_DOMAIN = TrustDomain("bench.local")
TARGET = 0.8


@dataclass(frozen=True)
class Figures:
    label: str
    rates: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


def make_csrs(count: int) -> list[bytes]:
    # A few distinct keys are enough: the cost measured is per CSR, not per key.
    keys = [generate_private_key(KeyType.EC_P256) for _ in range(16)]
    return [
        csr_to_pem(build_csr(keys[i % len(keys)], TRUST_DOMAIN.spiffe_id(f"/ns/bench/sa/w{i}")))
        .encode("ascii")
        for i in range(count)
    ]


def bare_pipeline(issuer_cert: x509.Certificate) -> Callable[[bytes], object]:
    """The least a signer must do per request, straight on cryptography."""
    key = ec.generate_private_key(ec.SECP256R1())
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False,
    )
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    not_before = issuer_cert.not_valid_before_utc
    not_after = issuer_cert.not_valid_after_utc

    def sign(pem: bytes) -> object:
        csr = x509.load_pem_x509_csr(pem)
        if not csr.is_signature_valid:
            raise ValueError("bad CSR signature")
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        public_key = csr.public_key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(issuer_cert.subject)
            .public_key(public_key)
            .serial_number(random_serial())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(eku, critical=False)
            .add_extension(san, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(aki, critical=False)
        )
        return builder.sign(key, hashes.SHA256())

    return sign


def citadel_pipeline(context: CaContext) -> Callable[[bytes], object]:
    issuer = context.issuer

    def sign(pem: bytes) -> object:
        info = validate_workload_csr(parse_csr(pem))
        chain = issuer.issue(
            info.public_key, SignParams(spiffe_id=info.spiffe_id, requester="bench")
        )
        return chain.cert_chain_pem()

    return sign


def run_threads(work: Callable[[bytes], object], csrs: Sequence[bytes], threads: int) -> float:
    """Process every CSR split across ``threads`` threads; returns certificates per second."""
    shares = [csrs[i::threads] for i in range(threads)]
    start = threading.Barrier(threads + 1)
    errors: list[BaseException] = []

    def worker(share: Sequence[bytes]) -> None:
        start.wait()
        try:
            for pem in share:
                work(pem)
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(s,)) for s in shares]
    for thread in pool:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in pool:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise errors[0]
    return len(csrs) / elapsed


def run_loop(work: Callable[[bytes], object], csrs: Sequence[bytes]) -> float:
    began = time.perf_counter()
    for pem in csrs:
        work(pem)
    return len(csrs) / (time.perf_counter() - began)


def measure(certs: int, threads: int, runs: int) -> tuple[list[Figures], Figures]:
    csrs = make_csrs(certs)
    with tempfile.TemporaryDirectory(prefix="citadel-bench-") as tmp:
        config = CaConfig(
            data_dir=Path(tmp) / "data", trust_domain=TRUST_DOMAIN, key_passphrase=b"bench"
        )
        with init_ca(config) as context:
            bare = bare_pipeline(context.issuer.signer.cert)
            ours = citadel_pipeline(context)
            run_loop(bare, csrs[:200])  # warm up both paths
            run_threads(ours, csrs[:200], threads)
            bare_1: list[float] = []
            bare_t: list[float] = []
            ours_t: list[float] = []
            ours_1: list[float] = []
            for _ in range(runs):  # interleaved, so drift hits both sides alike
                bare_1.append(run_loop(bare, csrs))
                ours_t.append(run_threads(ours, csrs, threads))
                bare_t.append(run_threads(bare, csrs, threads))
                ours_1.append(run_loop(ours, csrs[: max(1, certs // 4)]))
            rows = context.repository.list_audit(limit=1)
            assert rows, "no audit rows were written"
    figures = [
        Figures("bare cryptography, 1 thread", bare_1),
        Figures(f"bare cryptography, {threads} threads", bare_t),
        Figures(f"citadel issuer + SQLite audit, {threads} threads", ours_t),
        Figures("citadel issuer + SQLite audit, 1 thread", ours_1),
    ]
    # per run: citadel against the faster of the two bare variants measured next to it
    ratios = [o / max(b1, bt) for o, b1, bt in zip(ours_t, bare_1, bare_t, strict=True)]
    return figures, Figures("ratio", ratios)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--certs", type=int, default=2000, help="certificates per run")
    parser.add_argument(
        "--threads", type=int, default=32,
        help="signing threads (group commit batches what concurrent callers submit, as the "
        "server's worker threads do)",
    )
    parser.add_argument("--runs", type=int, default=5, help="runs (median reported), >= 3")
    args = parser.parse_args(argv)
    if args.runs < 3 or args.certs < 1 or args.threads < 1:
        parser.error("need --runs >= 3, --certs >= 1, --threads >= 1")
    figures, ratio = measure(args.certs, args.threads, args.runs)
    print(f"Signing throughput, ECDSA P-256, {args.certs} CSRs per run, {args.runs} runs")
    print(f"{'pipeline':<52} {'median/s':>9} {'min/s':>9} {'max/s':>9}")
    for fig in figures:
        print(f"{fig.label:<52} {fig.median:>9.0f} {min(fig.rates):>9.0f} {max(fig.rates):>9.0f}")
    verdict = "meets" if ratio.median >= TARGET else "is BELOW"
    print(
        f"ratio citadel ({args.threads} threads) / faster bare, per run: median "
        f"{ratio.median:.2f}, min {min(ratio.rates):.2f}, max {max(ratio.rates):.2f} "
        f"({verdict} the {TARGET} target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
