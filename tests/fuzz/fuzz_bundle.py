"""Fuzz the SPIFFE bundle parser: only InvalidBundleError may escape.

Usage: see tests/fuzz/README.md.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable
from pathlib import Path

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from citadel.identity.bundle import TrustBundle
    from citadel.identity.errors import InvalidBundleError
    from citadel.identity.spiffe_id import TrustDomain

from tests.fuzz._seeds import run_or_write_seeds

TRUST_DOMAIN = TrustDomain("example.org")


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(InvalidBundleError):
        TrustBundle.from_spiffe_json(TRUST_DOMAIN, data)


def seeds() -> Iterable[bytes]:
    from datetime import UTC, datetime, timedelta

    from citadel.identity.bundle import JwtAuthority
    from citadel.identity.keys import KeyType, generate_private_key
    from tests.fixtures.pki import make_pki

    pki = make_pki(now=datetime(2026, 6, 1, 12, tzinfo=UTC))
    bundle = TrustBundle(
        TRUST_DOMAIN,
        (pki.root,),
        (
            JwtAuthority("ec", generate_private_key(KeyType.EC_P256).public_key()),
            JwtAuthority("rsa", generate_private_key(KeyType.RSA_2048).public_key()),
        ),
        sequence=1,
        refresh_hint=timedelta(minutes=5),
    )
    yield bundle.to_spiffe_json().encode()
    yield b'{"keys": [], "spiffe_sequence": 0}'


def fuzz(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    run_or_write_seeds(seeds, fuzz)
