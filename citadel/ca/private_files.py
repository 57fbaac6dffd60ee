"""Private directories (0700) and private files (0600) written atomically.

A file is written to a temporary name created with ``O_CREAT | O_EXCL`` and mode 0600,
flushed with ``fsync``, then moved into place and the directory is synced, so a crash
leaves either the old state or the complete new file, never a torn or world-readable one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = ["ensure_private_dir", "is_private_file", "write_private_file"]

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed and make it mode 0700.

    Raises:
        OSError: it exists but is not a directory, or cannot be created or chmod-ed.
    """
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")
    if stat.S_IMODE(path.stat().st_mode) != PRIVATE_DIR_MODE:
        path.chmod(PRIVATE_DIR_MODE)
    return path


def is_private_file(path: Path) -> bool:
    """True when neither group nor others can access ``path``."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_file(
    path: Path, data: bytes, *, overwrite: bool = False, mode: int = PRIVATE_FILE_MODE
) -> None:
    """Atomically write ``data`` to ``path`` with ``mode`` (0600 unless told otherwise).

    Args:
        overwrite: replace an existing file; when False an existing file is an error and
            the check is atomic (the file is linked into place, which fails if it exists).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        OSError: the file could not be written.
    """
    directory = path.parent
    temp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE_MODE)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(temp, path)
        else:
            os.link(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
    _fsync_dir(directory)
