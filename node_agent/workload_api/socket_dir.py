"""The Workload API's socket directory, public socket and private (internal) socket.

The public socket lives in a directory of mode 0700 (only the agent's user) or 0750 with
a group (the workloads allowed to reach the API); the socket itself is 0600 or 0660. The
gRPC server listens on an internal socket in a private 0700 subdirectory that only the
agent can reach, so every call has to pass through the attesting proxy.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from node_agent.errors import SocketInUseError, SocketPathError

__all__ = [
    "MAX_SOCKET_PATH_BYTES",
    "bind_public_socket",
    "make_internal_dir",
    "prepare_socket_dir",
    "remove_quietly",
]

MAX_SOCKET_PATH_BYTES = 107  # sun_path is 108 bytes including the final NUL
INTERNAL_SOCKET_NAME = "g.sock"


def prepare_socket_dir(directory: Path, *, group: int | None) -> None:
    """Create (or tighten) the socket directory: 0700, or 0750 owned by ``group``.

    Raises:
        SocketPathError: the path is not a directory, is a symlink, or belongs to another
            user (a directory someone else controls cannot protect the socket).
    """
    mode = 0o750 if group is not None else 0o700
    try:
        directory.mkdir(mode=mode, parents=True, exist_ok=True)
        info = directory.lstat()
    except OSError as exc:
        raise SocketPathError(
            f"cannot create socket directory {directory}: {exc.strerror}"
        ) from exc
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise SocketPathError(f"socket directory {directory} is not a directory")
    if info.st_uid != os.geteuid():
        raise SocketPathError(f"socket directory {directory} belongs to another user")
    try:
        if group is not None:
            os.chown(directory, -1, group)
        os.chmod(directory, mode)
    except OSError as exc:
        raise SocketPathError(
            f"cannot secure socket directory {directory}: {exc.strerror}"
        ) from exc


def _clear_stale_socket(path: Path) -> None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise SocketPathError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except OSError as exc:
        if exc.errno not in (errno.ECONNREFUSED, errno.ENOENT):
            raise SocketPathError(f"cannot probe existing socket {path}: {exc.strerror}") from exc
    else:
        raise SocketInUseError(f"another process is serving on {path}")
    finally:
        probe.close()
    path.unlink(missing_ok=True)


def bind_public_socket(path: Path, *, group: int | None, backlog: int = 128) -> socket.socket:
    """A listening socket at ``path`` with mode 0600 (0660 and ``group`` when given).

    Raises:
        SocketPathError / SocketInUseError: the path is unusable or served by another process.
    """
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise SocketPathError(f"socket path {path} is longer than {MAX_SOCKET_PATH_BYTES} bytes")
    _clear_stale_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        if group is not None:
            os.chown(path, -1, group)
        os.chmod(path, 0o660 if group is not None else 0o600)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise SocketPathError(f"cannot listen on {path}: {exc.strerror}") from exc
    return sock


def make_internal_dir(socket_dir: Path) -> Path:
    """A fresh private (0700) directory for the internal gRPC socket; returns the socket path.

    Raises:
        SocketPathError: it cannot be created, or its socket path would be too long.
    """
    try:
        private = Path(tempfile.mkdtemp(prefix=".wl-", dir=socket_dir))
    except OSError as exc:
        raise SocketPathError(
            f"cannot create the internal socket directory: {exc.strerror}"
        ) from exc
    os.chmod(private, 0o700)
    internal = private / INTERNAL_SOCKET_NAME
    if len(os.fsencode(internal)) > MAX_SOCKET_PATH_BYTES:
        shutil.rmtree(private, ignore_errors=True)
        raise SocketPathError(
            f"socket directory {socket_dir} is too deep: the internal socket path would exceed "
            f"{MAX_SOCKET_PATH_BYTES} bytes"
        )
    return internal


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
