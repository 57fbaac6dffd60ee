"""Issuance throughput of the store: rows/s of ``record_issuances`` by batch size.

Each batch is one transaction (certificate rows plus their audit events). Run::

    .venv/bin/python -m tests.bench bench_store              # SQLite in a temp dir
    .venv/bin/python -m tests.bench.bench_store --rows 2048 --url postgresql://...

Not a test: it asserts nothing and prints numbers for the record.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from citadel.store import IssuanceInput, Repository

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PEM = "-----BEGIN CERTIFICATE-----\n" + "A" * 700 + "\n-----END CERTIFICATE-----\n"


def _issuance(n: int) -> IssuanceInput:
    return IssuanceInput(
        serial_hex=f"{n:032x}",
        spiffe_id=f"spiffe://example.org/ns/bench/sa/w{n % 500}",
        not_before=NOW - timedelta(minutes=2),
        not_after=NOW + timedelta(hours=24),
        fingerprint_sha256=f"{n:064x}",
        issuer_fingerprint="ab" * 32,
        requester="spiffe://example.org/ns/bench/sa/agent",
        metadata={"cluster": "bench"},
        certificate_pem=PEM,
        issued_at=NOW,
    )


def measure(repository: Repository, *, batch_size: int, rows: int, first: int) -> float:
    """Record ``rows`` certificates in batches; returns rows per second."""
    items = [_issuance(first + i) for i in range(rows)]
    started = time.perf_counter()
    for offset in range(0, rows, batch_size):
        repository.record_issuances(items[offset : offset + batch_size])
    return rows / (time.perf_counter() - started)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024, help="rows per batch size")
    parser.add_argument("--url", help="database URL (default: a new SQLite file)")
    args = parser.parse_args(list(argv))
    with tempfile.TemporaryDirectory(prefix="citadel-bench-") as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        with Repository.open(url) as repository:
            print(f"backend={repository.backend} rows_per_size={args.rows}")
            measure(repository, batch_size=8, rows=256, first=1)  # warm the statement caches
            first = 1 + 256
            for batch_size in (1, 16, 64):
                rate = measure(repository, batch_size=batch_size, rows=args.rows, first=first)
                first += args.rows
                print(f"batch={batch_size:>3}  {rate:10.0f} rows/s")
            started = time.perf_counter()
            result = repository.verify_audit_chain()
            elapsed = time.perf_counter() - started
            print(f"verify_audit_chain: ok={result.ok} events={result.checked} {elapsed:.2f}s")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
