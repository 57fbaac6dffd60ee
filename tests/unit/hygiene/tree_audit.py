"""Audits a directory tree the way an attacker on the same host would look at it.

Every regular file is read (its first 64 KiB): one that holds a PEM private key, or is
named like a key file (``key.pem``, ``*.key``, ``*-key.pem``), must be mode 0600 or
stricter. A directory that holds a key file or a socket must not be accessible to
"others" at all (a socket's own mode then no longer matters: nobody else can reach it).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["TreeAudit", "audit_tree"]

_READ_BYTES = 64 * 1024
_KEY_MARKER = b"PRIVATE KEY-----"


def _looks_like_key_file(path: Path) -> bool:
    name = path.name
    if name == "key.pem" or name.endswith((".key", "-key.pem")):
        return True
    try:
        with path.open("rb") as handle:
            return _KEY_MARKER in handle.read(_READ_BYTES)
    except OSError:
        return False


@dataclass
class TreeAudit:
    key_files: list[Path] = field(default_factory=list)
    sockets: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def audit_tree(root: Path) -> TreeAudit:
    audit = TreeAudit()
    sensitive_dirs: set[Path] = set()
    for directory, _, files in os.walk(root):
        for name in files:
            path = Path(directory) / name
            info = path.lstat()
            if stat.S_ISSOCK(info.st_mode):
                audit.sockets.append(path)
                sensitive_dirs.add(path.parent)
            elif stat.S_ISREG(info.st_mode) and _looks_like_key_file(path):
                audit.key_files.append(path)
                sensitive_dirs.add(path.parent)
                if stat.S_IMODE(info.st_mode) & 0o077:
                    audit.problems.append(
                        f"key file {path} has mode {stat.S_IMODE(info.st_mode):04o} (want 0600)"
                    )
    for held in sorted(sensitive_dirs):
        if _mode(held) & 0o007:
            audit.problems.append(
                f"directory {held} (holding keys or sockets) has mode "
                f"{_mode(held):04o}: others may enter it"
            )
    return audit
