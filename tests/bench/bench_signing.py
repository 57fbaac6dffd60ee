"""In-process signing throughput: Citadel's issuer next to the bare cryptography pipeline.

Both sides get the same ECDSA P-256 CSR PEMs (generated beforehand, not timed), in the same
order:

* bare: parse the CSR, verify its signature, build an X509-SVID leaf, sign it (P-256) --
  the least any signer must do, straight on cryptography, on one thread (its fastest: the
  work holds the GIL, so threads only add switching) and, for reference, on ``--threads``.
* citadel: ``parse_csr`` + ``validate_workload_csr`` + ``Issuer.issue`` (template, sign,
  X509-SVID check of the signed leaf, the audit row committed durably to SQLite in a
  temporary directory through group commit, before ``issue`` returns) + the PEM chain out,
  from ``--threads`` threads (the server's default worker count), because group commit
  needs concurrent callers to share a transaction, as the server's worker threads do.

Runs alternate between the sides (the order flips every run, so drift hits both alike);
the ratio is computed per run, citadel over the faster bare variant of the same run, and
its median, min and max are reported with the throughputs. The machine, its load and the
database's durability settings are printed, because the figure depends on all three.

    python -m tests.bench.bench_signing [--certs 2000] [--threads 16] [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cryptography
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy import text

from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, init_ca
from citadel.ca.issuer import Issuer, SignParams
from citadel.identity.csr import build_csr, csr_to_pem, parse_csr, validate_workload_csr
from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_templates import random_serial
from citadel.store import IssuanceInput, Repository
from citadel.store.engine import create_store_engine

TRUST_DOMAIN = TrustDomain("bench.local")
TARGET = 0.8
SERVER_THREADS = 16  # citadel.server.config.ServerConfig.threads default

Work = Callable[[bytes], object]


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
        csr_to_pem(
            build_csr(keys[i % len(keys)], TRUST_DOMAIN.spiffe_id(f"/ns/bench/sa/w{i}"))
        ).encode("ascii")
        for i in range(count)
    ]


def bare_pipeline(issuer_cert: x509.Certificate) -> Work:
    """The least a signer must do per request, straight on cryptography."""
    key = ec.generate_private_key(ec.SECP256R1())
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key())
    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
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


class CountingRecorder:
    """The repository, counting group commits (one ``record_issuances`` call each)."""

    def __init__(self, repository: Repository) -> None:
        self._repository = repository
        self.commits = 0
        self.records = 0

    def record_issuances(self, batch: Sequence[IssuanceInput]) -> object:
        self.commits += 1  # called on the committer thread only
        self.records += len(batch)
        return self._repository.record_issuances(batch)


def counted_issuer(context: CaContext, recorder: CountingRecorder) -> Issuer:
    """An issuer like the context's own (same signer, roots and settings, see
    citadel.ca.context), whose commits can be counted."""
    config = context.config
    return Issuer(
        signer=context.issuer.signer,
        roots=context.issuer.trust_bundle().x509_authorities,
        trust_domain=config.trust_domain,
        recorder=recorder,
        clock=context.clock,
        default_ttl=config.default_ttl,
        max_ttl=config.max_ttl,
        skew=config.skew,
        max_batch=config.max_batch,
        commit_timeout=config.commit_timeout,
    )


def citadel_pipeline(issuer: Issuer) -> Work:
    def sign(pem: bytes) -> object:
        info = validate_workload_csr(parse_csr(pem))
        chain = issuer.issue(
            info.public_key, SignParams(spiffe_id=info.spiffe_id, requester="bench")
        )
        return chain.cert_chain_pem()

    return sign


def run_threads(work: Work, csrs: Sequence[bytes], threads: int) -> float:
    """Process every CSR split across ``threads`` threads; returns certificates per second."""
    if threads == 1:
        began = time.perf_counter()
        for pem in csrs:
            work(pem)
        return len(csrs) / (time.perf_counter() - began)
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


def durability(config: CaConfig) -> str:
    """The journal mode and synchronous level of a store connection (the repository's own
    engine settings: create_store_engine sets WAL and leaves synchronous at its default)."""
    engine = create_store_engine(config.database_url)
    try:
        with engine.connect() as connection:
            journal = connection.execute(text("PRAGMA journal_mode")).scalar_one()
            level = connection.execute(text("PRAGMA synchronous")).scalar_one()
    finally:
        engine.dispose()
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return f"journal_mode={journal}, synchronous={names.get(level, level)}"


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpus} CPUs, Python {platform.python_version()}, cryptography "
        f"{cryptography.__version__}, SQLite {sqlite3.sqlite_version}"
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} (1 min) / {five:.1f} (5 min)"


@dataclass(frozen=True)
class Measurement:
    figures: list[Figures]
    ratio: Figures
    durability: str
    commits: int
    records: int


def measure(certs: int, threads: int, runs: int) -> Measurement:
    csrs = make_csrs(certs)
    with tempfile.TemporaryDirectory(prefix="citadel-bench-") as tmp:
        config = CaConfig(
            data_dir=Path(tmp) / "data", trust_domain=TRUST_DOMAIN, key_passphrase=b"bench"
        )
        with init_ca(config) as context:
            mode = durability(config)
            recorder = CountingRecorder(context.repository)
            issuer = counted_issuer(context, recorder)
            try:
                bare = bare_pipeline(issuer.signer.cert)
                ours = citadel_pipeline(issuer)
                warm = csrs[: min(len(csrs), 400)]
                run_threads(bare, warm, 1)
                run_threads(bare, warm, threads)
                run_threads(ours, warm, threads)
                commits_before, records_before = recorder.commits, recorder.records
                bare_1: list[float] = []
                bare_t: list[float] = []
                ours_t: list[float] = []
                sides: list[tuple[list[float], Work, int]] = [
                    (bare_1, bare, 1),
                    (ours_t, ours, threads),
                    (bare_t, bare, threads),
                ]
                for run in range(runs):  # alternate, and flip the order every run
                    for rates, work, count in sides if run % 2 == 0 else reversed(sides):
                        rates.append(run_threads(work, csrs, count))
            finally:
                issuer.close()
            recorded = recorder.records - records_before
            assert recorded == runs * certs, "an issuance was not recorded"
            assert context.repository.verify_audit_chain().ok, "the audit chain is broken"
    figures = [
        Figures("bare cryptography, 1 thread", bare_1),
        Figures(f"bare cryptography, {threads} threads", bare_t),
        Figures(f"citadel issuer + durable SQLite audit, {threads} threads", ours_t),
    ]
    ratios = [o / max(b1, bt) for o, b1, bt in zip(ours_t, bare_1, bare_t, strict=True)]
    return Measurement(
        figures, Figures("ratio", ratios), mode, recorder.commits - commits_before, recorded
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--certs", type=int, default=2000, help="certificates per run")
    parser.add_argument(
        "--threads",
        type=int,
        default=SERVER_THREADS,
        help="signing threads on the citadel side (the server's default worker count)",
    )
    parser.add_argument("--runs", type=int, default=7, help="runs (median reported), >= 5")
    args = parser.parse_args(argv)
    if args.runs < 5 or args.certs < 1 or args.threads < 1:
        parser.error("need --runs >= 5, --certs >= 1, --threads >= 1")
    before = load()
    result = measure(args.certs, args.threads, args.runs)
    print(f"Signing throughput, ECDSA P-256, {args.certs} CSRs per run, {args.runs} runs")
    print(f"machine: {machine()}; load average before {before}, after {load()}")
    print(
        f"audit store: SQLite file, {result.durability}; each issue() returns after its "
        f"commit; {result.records} records in {result.commits} commits "
        f"(mean batch {result.records / max(1, result.commits):.1f})"
    )
    print(f"{'pipeline':<56} {'median/s':>9} {'min/s':>9} {'max/s':>9}")
    for fig in result.figures:
        print(f"{fig.label:<56} {fig.median:>9.0f} {min(fig.rates):>9.0f} {max(fig.rates):>9.0f}")
    ratio = result.ratio
    verdict = "meets" if ratio.median >= TARGET else "is BELOW"
    print(
        f"ratio citadel / faster bare, per run: median {ratio.median:.2f}, "
        f"min {min(ratio.rates):.2f}, max {max(ratio.rates):.2f} ({verdict} the {TARGET} target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
