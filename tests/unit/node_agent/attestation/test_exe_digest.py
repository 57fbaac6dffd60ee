"""The executable digest cache: correct digests, one read per file version, bounded size."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from node_agent.attestation import ExeDigestCache


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_digest_is_the_sha256_of_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "bin", os.urandom(3 * 1024 * 1024 + 17))
    with path.open("rb") as handle:
        assert ExeDigestCache().digest(handle) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_file_is_hashed_once(tmp_path: Path) -> None:
    cache = ExeDigestCache()
    path = write(tmp_path / "bin", b"v1")
    for _ in range(3):
        with path.open("rb") as handle:
            cache.digest(handle)
    assert cache.hashed == 1


def test_modified_file_is_hashed_again(tmp_path: Path) -> None:
    cache = ExeDigestCache()
    path = write(tmp_path / "bin", b"version one")
    with path.open("rb") as handle:
        first = cache.digest(handle)
    write(path, b"version two!")
    with path.open("rb") as handle:
        second = cache.digest(handle)
    assert first != second == hashlib.sha256(b"version two!").hexdigest()
    assert cache.hashed == 2


def test_file_over_the_size_limit_gets_no_digest(tmp_path: Path) -> None:
    path = write(tmp_path / "big", b"x" * 2048)
    with path.open("rb") as handle:
        assert ExeDigestCache(max_file_bytes=1024).digest(handle) is None


def test_least_recently_used_entries_are_evicted(tmp_path: Path) -> None:
    cache = ExeDigestCache(max_entries=2)
    paths = [write(tmp_path / f"b{i}", f"file {i}".encode()) for i in range(3)]
    for path in [*paths, paths[0]]:
        with path.open("rb") as handle:
            cache.digest(handle)
    assert cache.hashed == 4  # b0 was evicted by b2 and read again


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ExeDigestCache(max_entries=0)
