"""Certificates on disk for workloads without Envoy.

Writes ``cert-chain.pem``, ``key.pem`` (0600) and ``root-cert.pem`` into an output
directory on every rotation. Each file is replaced atomically: written to a temporary
file in the same directory, fsynced, then renamed over the old one (and the directory
fsynced), so a reader sees either the old or the new file, never a partial one.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["CERT_CHAIN_FILE", "KEY_FILE", "ROOT_CERT_FILE", "CertWriter", "write_atomically"]

CERT_CHAIN_FILE = "cert-chain.pem"
KEY_FILE = "key.pem"
ROOT_CERT_FILE = "root-cert.pem"


def write_atomically(path: Path, data: bytes, *, mode: int) -> None:
    """Replace ``path`` with ``data`` (temp file + fsync + rename + directory fsync)."""
    directory = path.parent
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class CertWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def prepare(self) -> None:
        """Create the output directory (0750) if needed."""
        self.directory.mkdir(mode=0o750, parents=True, exist_ok=True)

    def write(self, *, chain_pem: bytes, key_pem: bytes, roots_pem: bytes) -> None:
        """Write the three files. The key goes first so a chain never names an absent key."""
        self.prepare()
        write_atomically(self.directory / ROOT_CERT_FILE, roots_pem, mode=0o644)
        write_atomically(self.directory / KEY_FILE, key_pem, mode=0o600)
        write_atomically(self.directory / CERT_CHAIN_FILE, chain_pem, mode=0o644)
