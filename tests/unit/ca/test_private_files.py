from __future__ import annotations

import stat
from pathlib import Path

import pytest

from citadel.ca.private_files import ensure_private_dir, write_private_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_file_is_0600_with_the_exact_content(tmp_path: Path) -> None:
    write_private_file(tmp_path / "secret", b"abc")
    assert (tmp_path / "secret").read_bytes() == b"abc"
    assert _mode(tmp_path / "secret") == 0o600


def test_existing_file_is_not_overwritten_by_default(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    with pytest.raises(FileExistsError):
        write_private_file(tmp_path / "f", b"new")
    assert (tmp_path / "f").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_overwrite_replaces_atomically(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    write_private_file(tmp_path / "f", b"new", overwrite=True)
    assert (tmp_path / "f").read_bytes() == b"new"
    assert _mode(tmp_path / "f") == 0o600



def test_public_mode_can_be_requested(tmp_path: Path) -> None:
    write_private_file(tmp_path / "cert.pem", b"x", mode=0o644)
    assert _mode(tmp_path / "cert.pem") == 0o644


def test_private_dir_is_created_with_parents_and_0700(tmp_path: Path) -> None:
    directory = ensure_private_dir(tmp_path / "a" / "b")
    assert _mode(directory) == 0o700


def test_private_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError):
        ensure_private_dir(tmp_path / "f")
