"""The tree audit flags what an attacker on the host could use (so its silence means
something)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem
from tests.unit.hygiene.tree_audit import audit_tree


def _key(path: Path, mode: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(private_key_to_pkcs8_pem(generate_private_key()))
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604], ids=["0644", "0640", "0604"])
def test_a_key_file_readable_by_group_or_others_is_flagged(tmp_path: Path, mode: int) -> None:
    tmp_path.chmod(0o700)
    key = _key(tmp_path / "secret.bin", mode)  # found by its content, whatever its name
    audit = audit_tree(tmp_path)
    assert audit.key_files == [key]
    assert len(audit.problems) == 1 and "secret.bin" in audit.problems[0]


def test_a_key_in_a_directory_others_may_enter_is_flagged(tmp_path: Path) -> None:
    _key(tmp_path / "out" / "key.pem", 0o600)
    (tmp_path / "out").chmod(0o755)
    problems = audit_tree(tmp_path).problems
    assert problems == [f"directory {tmp_path / 'out'} (holding keys or sockets) has mode "
                        "0755: others may enter it"]  # fmt: skip


def test_a_socket_in_a_world_accessible_directory_is_flagged(tmp_path: Path) -> None:
    directory = Path(os.path.realpath("/tmp")) / f"ta-{os.getpid()}"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    listener = socket.socket(socket.AF_UNIX)
    try:
        listener.bind(str(directory / "s.sock"))
        audit = audit_tree(directory)
        assert audit.sockets == [directory / "s.sock"]
        assert len(audit.problems) == 1
        directory.chmod(0o750)
        assert audit_tree(directory).problems == []
    finally:
        listener.close()
        (directory / "s.sock").unlink(missing_ok=True)
        directory.rmdir()


def test_a_private_tree_passes(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    _key(tmp_path / "keys" / "root.key", 0o600)
    (tmp_path / "keys").chmod(0o700)
    (tmp_path / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    audit = audit_tree(tmp_path)
    assert len(audit.key_files) == 1
    assert audit.problems == []
