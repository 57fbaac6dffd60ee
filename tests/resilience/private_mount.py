"""A small tmpfs that only the processes of a private mount namespace see.

A full or read-only disk cannot be simulated with file modes when the tests run as root
(root writes through ``chmod``), and mounting a tmpfs in the test host's own namespace
would leak a mount if the test died. Instead a ``sleep`` process holds a new mount
namespace (``unshare -m --propagation private``); the tmpfs is mounted inside it with
``nsenter``, the program under test is started inside it the same way, and the test reads
and writes the tmpfs through ``/proc/<holder>/root``. Killing the holder (and the program)
by PID makes the namespace, and the tmpfs with it, disappear.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from subprocess import CompletedProcess

from tests.peers import require_peer

__all__ = ["PrivateTmpfs"]

_TIMEOUT_S = 10


class PrivateTmpfs:
    def __init__(self, mount_point: Path, *, size_bytes: int) -> None:
        self.mount_point = mount_point
        self.size_bytes = size_bytes
        self.holder: subprocess.Popen[bytes] | None = None

    def start(self) -> PrivateTmpfs:
        unshare, nsenter = shutil.which("unshare"), shutil.which("nsenter")
        require_peer(
            unshare is not None and nsenter is not None and os.geteuid() == 0,
            "unshare and nsenter (util-linux), run as root, to mount a private tmpfs",
        )
        self.mount_point.mkdir(parents=True, exist_ok=True)
        self.holder = subprocess.Popen(
            ["unshare", "-m", "--propagation", "private", "sleep", "3600"],
            stdin=subprocess.DEVNULL,
        )
        ours = os.readlink("/proc/self/ns/mnt")
        deadline = time.monotonic() + _TIMEOUT_S
        while os.readlink(f"/proc/{self.holder.pid}/ns/mnt") == ours:
            if self.holder.poll() is not None or time.monotonic() > deadline:
                self.stop()
                require_peer(False, "unshare -m failed (no CAP_SYS_ADMIN here?)")
            time.sleep(0.01)
        options = f"size={self.size_bytes},mode=0700"
        mounted = self.run("mount", "-t", "tmpfs", "-o", options, "tmpfs", str(self.mount_point))
        if mounted.returncode != 0:
            self.stop()
            require_peer(False, f"cannot mount a tmpfs in a private namespace: {mounted.stderr}")
        return self

    @property
    def pid(self) -> int:
        assert self.holder is not None
        return self.holder.pid

    def prefix(self) -> list[str]:
        """Run a command inside the namespace: ``[*prefix(), program, args...]``."""
        return ["nsenter", "-t", str(self.pid), "-m", "--"]

    def run(self, *argv: str, env: Mapping[str, str] | None = None) -> CompletedProcess[str]:
        """Run a command to completion inside the namespace."""
        return subprocess.run(
            [*self.prefix(), *argv],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**os.environ, **(env or {})},
        )

    def view(self, relative: str = "") -> Path:
        """The tmpfs (or a path in it) as this process can reach it."""
        inside = self.mount_point / relative if relative else self.mount_point
        return Path(f"/proc/{self.pid}/root{inside}")

    def remount(self, *, read_only: bool) -> None:
        mode = "ro" if read_only else "rw"
        result = self.run("mount", "-o", f"remount,{mode}", str(self.mount_point))
        assert result.returncode == 0, result.stderr

    def fill(self, name: str = "filler") -> int:
        """Write zeros until the tmpfs is full; returns the bytes written."""
        written = 0
        chunk = b"\0" * (64 * 1024)
        fd = os.open(self.view(name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while True:
                written += os.write(fd, chunk)
        except OSError:  # ENOSPC: full
            return written
        finally:
            os.close(fd)

    def stop(self) -> None:
        holder, self.holder = self.holder, None
        if holder is not None and holder.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(holder.pid, signal.SIGKILL)
            holder.wait(_TIMEOUT_S)
