"""Fuzz SPIFFE ID and trust-domain parsing.

Only InvalidSpiffeIdError may escape, and every accepted string must print back unchanged.
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
    from citadel.identity.errors import InvalidSpiffeIdError
    from citadel.identity.spiffe_id import SpiffeId, TrustDomain

from tests.fuzz._seeds import run_or_write_seeds


def test_one_input(data: bytes) -> None:
    # UTF-8 keeps seeds readable; surrogateescape turns invalid bytes into lone surrogates.
    text = data.decode("utf-8", errors="surrogateescape")
    try:
        parsed = SpiffeId.parse(text)
    except InvalidSpiffeIdError:
        pass
    else:
        if str(parsed) != text:
            raise AssertionError(f"accepted {text!r} but prints {str(parsed)!r}")
    with contextlib.suppress(InvalidSpiffeIdError):
        TrustDomain.parse(text)


def seeds() -> Iterable[bytes]:
    samples = [
        "spiffe://example.org/ns/default/sa/web",
        "spiffe://example.org",
        "spiffe://a-b_c.d0/A.z-0_9/x",
        "spiffe://user:pw@example.org:8443/a/../b//c/?q#f",
        "example.org",
    ]
    for sample in samples:
        yield sample.encode()


def fuzz(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    run_or_write_seeds(seeds, fuzz)
