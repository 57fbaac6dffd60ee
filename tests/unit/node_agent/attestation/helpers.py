"""Spawn real peer processes connected to a listening socket, for attestation tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.peers import require_peer

__all__ = ["ConnectedChild", "Listener", "listener"]

CHILD = Path(__file__).with_name("peer_child.py")
WAIT = 10.0


@dataclass
class ConnectedChild:
    process: subprocess.Popen[str]
    connection: socket.socket

    def send(self, line: str = "go") -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def expect(self, word: str) -> None:
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == word


@dataclass
class Listener:
    sock: socket.socket
    path: Path
    children: list[subprocess.Popen[str]]

    def start(
        self,
        *,
        uid: int | None = None,
        gid: int | None = None,
        groups: tuple[int, ...] = (),
        then: str = "exit",
    ) -> subprocess.Popen[str]:
        """A child that has connected (not yet accepted)."""
        args = [sys.executable, str(CHILD), str(self.path), "--then", then]
        if uid is not None:
            args += ["--uid", str(uid), "--gid", str(gid if gid is not None else uid)]
            args += ["--groups", ",".join(str(g) for g in groups)]
        process = subprocess.Popen(
            args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, close_fds=True
        )
        self.children.append(process)
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "connected"
        return process

    def spawn(
        self,
        *,
        uid: int | None = None,
        gid: int | None = None,
        groups: tuple[int, ...] = (),
        then: str = "exit",
    ) -> ConnectedChild:
        """A child that has connected, and our end of its accepted connection."""
        process = self.start(uid=uid, gid=gid, groups=groups, then=then)
        connection, _ = self.sock.accept()
        return ConnectedChild(process, connection)


@contextmanager
def listener() -> Iterator[Listener]:
    """A listening socket any uid can reach (tests drop children to other uids)."""
    require_peer(os.geteuid() == 0, "root, to run peer processes as other uids")
    directory = Path(tempfile.mkdtemp(prefix="att-", dir="/tmp"))
    os.chmod(directory, 0o755)  # noqa: S103 (children run as other uids)
    path = directory / "s.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o777)  # noqa: S103 (a test socket anyone may dial)
    sock.listen(8)
    sock.settimeout(WAIT)
    state = Listener(sock, path, [])
    try:
        yield state
    finally:
        sock.close()
        for process in state.children:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=WAIT)
            for stream in (process.stdin, process.stdout):
                if stream is not None:
                    stream.close()
        shutil.rmtree(directory, ignore_errors=True)
