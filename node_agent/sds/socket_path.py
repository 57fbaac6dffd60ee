"""Preparing the Unix socket path the SDS server listens on.

- The path must fit ``sun_path`` (107 bytes plus the terminating NUL).
- Its directory is created with mode 0750.
- An existing socket with a live listener belongs to another process: refuse to start
  (gRPC would otherwise silently unlink it and steal the path).
- A stale socket (nothing listening) is removed; any other kind of file is left alone
  and refused.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from pathlib import Path

from node_agent.errors import SocketInUseError, SocketPathError

__all__ = ["MAX_SOCKET_PATH_BYTES", "prepare_socket_path", "socket_owner_pids"]

MAX_SOCKET_PATH_BYTES = 107

_log = logging.getLogger(__name__)


def _socket_inodes(path: Path) -> set[str]:
    """Inodes of listening sockets bound to ``path`` (from /proc/net/unix)."""
    inodes: set[str] = set()
    try:
        with open("/proc/net/unix", encoding="utf-8", errors="replace") as table:
            next(table, None)
            for line in table:
                fields = line.split()
                if len(fields) >= 8 and fields[7] == str(path):
                    inodes.add(fields[6])
    except OSError:
        pass
    return inodes


def socket_owner_pids(path: Path) -> list[int]:
    """Best effort: PIDs of processes holding a socket bound to ``path``."""
    inodes = {f"socket:[{inode}]" for inode in _socket_inodes(path)}
    if not inodes:
        return []
    pids: list[int] = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.scandir(f"/proc/{entry.name}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(fd.path) in inodes:
                        pids.append(int(entry.name))
                        break
    return sorted(pids)


def _has_listener(path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
            return False
        if exc.errno in (errno.EAGAIN, errno.ETIMEDOUT):  # backlog full: someone listens
            return True
        raise SocketPathError(f"cannot probe socket {path}: {exc.strerror or exc}") from exc
    finally:
        probe.close()
    return True


def prepare_socket_path(path: Path) -> Path:
    """Make ``path`` ready to bind, or raise with a message that says what to do.

    Raises:
        SocketPathError: too long, relative, or occupied by something that is not a socket.
        SocketInUseError: a live process listens on it.
    """
    if not path.is_absolute():
        raise SocketPathError(f"SDS socket path {path} must be absolute")
    size = len(os.fsencode(str(path)))
    if size > MAX_SOCKET_PATH_BYTES:
        raise SocketPathError(
            f"SDS socket path is {size} bytes long; Unix sockets allow at most "
            f"{MAX_SOCKET_PATH_BYTES} bytes: choose a shorter path ({str(path)[:60]}...)"
        )
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o750, parents=True)
        os.chmod(directory, 0o750)  # noqa: S103 - group may connect; mkdir honours the umask
    try:
        info = path.lstat()
    except FileNotFoundError:
        return path
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathError(
            f"SDS socket path {path} exists and is not a socket; remove it or choose another path"
        )
    if _has_listener(path):
        pids = socket_owner_pids(path)
        owner = f" (pid {', '.join(map(str, pids))})" if pids else ""
        raise SocketInUseError(
            f"SDS socket {path} is in use by another live process{owner}; "
            "stop that agent or configure a different sds.socket_path"
        )
    _log.info("removing stale SDS socket %s (no process listens on it)", path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return path
