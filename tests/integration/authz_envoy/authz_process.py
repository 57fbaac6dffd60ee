"""``citadel authz serve`` as a subprocess on a Unix socket, stopped by PID.

Readiness is the ``listening on ...`` line the command prints; policy reloads are observed
through the ``authz policy loaded`` / ``reload refused`` lines it logs (stdout and stderr
both go to one log file). Every wait is bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AuthzServeProcess"]

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0
_LOADED = "authz policy loaded from"
_REFUSED = "authz policy reload refused"


@dataclass
class AuthzServeProcess:
    """One ``citadel authz serve --listen unix:<socket>`` process."""

    policy_dir: Path
    socket_path: Path
    workdir: Path
    trust_domain: str = "example.org"
    name: str = "authz"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, *, timeout: float = _START_TIMEOUT_S) -> AuthzServeProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "citadel"),
                    "authz",
                    "serve",
                    "--policy",
                    str(self.policy_dir),
                    "--listen",
                    f"unix:{self.socket_path}",
                    "--trust-domain",
                    self.trust_domain,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while f"listening on unix:{self.socket_path}" not in self._log_from(offset):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """SIGTERM by PID (SIGCONT first, in case it was paused), then SIGKILL."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGCONT)
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(_STOP_TIMEOUT_S)
        self.process = None

    def kill(self) -> None:
        """SIGKILL by PID: a crash; the socket file stays behind."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(_STOP_TIMEOUT_S)
        self.process = None

    def pause(self) -> None:
        """SIGSTOP by PID: the socket still accepts connections but nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    # --- policy reloads --------------------------------------------------------------------
    def loads(self) -> int:
        """How many policies this log has recorded as applied (initial loads included)."""
        return self._log_from(0).count(_LOADED)

    def refusals(self) -> int:
        return self._log_from(0).count(_REFUSED)

    def _log_from(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                return handle.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self._log_from(0).splitlines()[-lines:]) or "(no log)"
