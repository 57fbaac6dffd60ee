"""The process on the other end of a Unix socket, pinned so its PID cannot be mistaken.

``SO_PEERCRED`` gives the pid, uid and gid of the process that called ``connect()``. A PID
alone is not an identity: the process can exit and the kernel can hand the same number
to another process before we read ``/proc/<pid>``. So each connection also holds a
*pidfd* for the connecting process:

* ``SO_PEERPIDFD`` (Linux 6.5+) returns a pidfd for exactly the process that connected,
  with no race at all;
* on older kernels ``pidfd_open(pid)`` right after ``accept()`` narrows the race to the
  time between ``connect()`` and ``accept()``, and the process start time recorded then
  is compared again at every attestation.

A pidfd becomes readable once its process has exited. A process that is still alive
keeps its PID, so "alive after reading /proc" proves every read saw the right process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from node_agent.attestation.errors import AttestationError, PeerGoneError
from node_agent.attestation.procfs import ProcFs

__all__ = ["PeerCredentials", "PeerProcess", "read_peer_credentials"]

SO_PEERPIDFD = getattr(socket, "SO_PEERPIDFD", 77)
_UCRED = struct.Struct("iII")  # pid_t pid; uid_t uid; gid_t gid


@dataclass(frozen=True, slots=True)
class PeerCredentials:
    """What the kernel recorded when the peer called ``connect()``."""

    pid: int
    uid: int
    gid: int


def read_peer_credentials(sock: socket.socket) -> PeerCredentials:
    """``SO_PEERCRED`` of a connected Unix socket.

    Raises:
        AttestationError: not a Unix socket, or the kernel refused the query.
    """
    if sock.family != socket.AF_UNIX:
        raise AttestationError("peer credentials exist only for Unix sockets")
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    except OSError as exc:
        raise AttestationError(f"cannot read the peer credentials: {exc.strerror}") from exc
    pid, uid, gid = _UCRED.unpack(raw)
    return PeerCredentials(pid, uid, gid)


def _peer_pidfd(sock: socket.socket, pid: int) -> int | None:
    try:
        return int(sock.getsockopt(socket.SOL_SOCKET, SO_PEERPIDFD))
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            raise PeerGoneError("the peer process exited before it was accepted") from exc
        if exc.errno not in (errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP):
            raise AttestationError(f"cannot pin the peer process: {exc.strerror}") from exc
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError as exc:
        raise PeerGoneError("the peer process exited before it was accepted") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return None  # no pidfds at all: only the start-time comparison remains
        raise AttestationError(f"cannot pin the peer process: {exc.strerror}") from exc


class PeerProcess:
    """The connecting process of one accepted connection, pinned by a pidfd.

    The pidfd is closed with :meth:`close`, but never while an attestation uses it
    (:meth:`pinned`), so a recycled descriptor number can never be consulted.
    """

    def __init__(self, credentials: PeerCredentials, pidfd: int | None, start_time: int) -> None:
        self.credentials = credentials
        self.start_time = start_time
        self._pidfd = pidfd
        self._lock = threading.Lock()
        self._users = 0
        self._closed = False

    @classmethod
    def from_socket(cls, sock: socket.socket, procfs: ProcFs) -> PeerProcess:
        """Pin the process that connected ``sock``.

        Raises:
            AttestationError: the peer is not visible here (another PID namespace) or
                cannot be pinned.
            PeerGoneError: it has already exited.
        """
        credentials = read_peer_credentials(sock)
        if credentials.pid <= 0:
            raise AttestationError("the peer process is not visible in this PID namespace")
        pidfd = _peer_pidfd(sock, credentials.pid)
        try:
            start_time = procfs.start_time(credentials.pid)
            peer = cls(credentials, pidfd, start_time)
            if not peer._alive():
                raise PeerGoneError("the peer process exited before it was accepted")
        except BaseException:
            if pidfd is not None:
                os.close(pidfd)
            raise
        return peer

    def _alive(self) -> bool:
        if self._pidfd is None:
            try:
                os.kill(self.credentials.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        poller = select.poll()
        poller.register(self._pidfd, select.POLLIN)
        return not poller.poll(0)  # a pidfd turns readable when its process exits

    def is_alive(self) -> bool:
        """True while the pinned process has not exited."""
        with self.pinned():
            return self._alive()

    @contextlib.contextmanager
    def pinned(self) -> Iterator[None]:
        """Keep the pidfd open for the duration of the block.

        Raises:
            PeerGoneError: the connection (and its pin) is already closed.
        """
        with self._lock:
            if self._closed:
                raise PeerGoneError("the connection of the peer process is closed")
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                release = self._closed and self._users == 0
            if release:
                self._release()

    def close(self) -> None:
        """Drop the pin once no attestation is using it (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            release = self._users == 0
        if release:
            self._release()

    def _release(self) -> None:
        pidfd, self._pidfd = self._pidfd, None
        if pidfd is not None:
            os.close(pidfd)

    def __repr__(self) -> str:
        c = self.credentials
        return f"PeerProcess(pid={c.pid}, uid={c.uid}, gid={c.gid})"
