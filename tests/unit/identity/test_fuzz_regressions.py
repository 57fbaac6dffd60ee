"""Replays every fuzzer crasher kept in tests/fixtures/crashers/ (see the README there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from citadel.identity.csr import parse_csr, validate_workload_csr
from citadel.identity.errors import InvalidCsrError, InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId, TrustDomain

CRASHERS = Path(__file__).resolve().parents[2] / "fixtures" / "crashers"


def _files(target: str) -> list[Path]:
    files = sorted((CRASHERS / target).glob("crash-*"))
    assert files, f"no crashers kept for {target}"
    return files


@pytest.mark.parametrize("path", _files("csr"), ids=lambda p: p.name[:14])
def test_csr_crasher_now_raises_invalid_csr_error(path: Path) -> None:
    data = path.read_bytes()
    with pytest.raises(InvalidCsrError):
        validate_workload_csr(parse_csr(data))


@pytest.mark.parametrize("path", _files("spiffe_id"), ids=lambda p: p.name[:14])
def test_spiffe_id_crasher_now_raises_invalid_spiffe_id_error(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")  # as the harness does
    with pytest.raises(InvalidSpiffeIdError):
        SpiffeId.parse(text)
    with pytest.raises(InvalidSpiffeIdError):
        TrustDomain.parse(text)
