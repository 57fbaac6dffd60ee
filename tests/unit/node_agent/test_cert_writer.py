from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from node_agent.cert_writer import CertWriter, write_atomically


def test_atomic_write_replaces_the_file_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    target.write_bytes(b"old")
    inode = target.stat().st_ino
    write_atomically(target, b"new", mode=0o600)
    assert target.read_bytes() == b"new"
    assert target.stat().st_ino != inode  # a new file renamed over the old one
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.pem"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "cert-chain.pem"
    target.write_bytes(b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="No space left"):
        write_atomically(target, b"new", mode=0o644)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cert-chain.pem"]


def test_writer_creates_its_directory_with_mode_0750(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        CertWriter(tmp_path / "out").write(chain_pem=b"c", key_pem=b"k", roots_pem=b"r")
    finally:
        os.umask(old)
    out = tmp_path / "out"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == {
        "cert-chain.pem": 0o644,
        "key.pem": 0o600,
        "root-cert.pem": 0o644,
    }
