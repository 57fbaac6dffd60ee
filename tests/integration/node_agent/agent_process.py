"""``citadel-agent run`` as a subprocess: configured from a dict, stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["AgentProcess"]

_START_TIMEOUT_S = 30.0
_STOP_TIMEOUT_S = 10.0


@dataclass
class AgentProcess:
    config: dict[str, Any]
    workdir: Path
    name: str = "agent"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    status_port: int = 0
    pid: int = 0

    @property
    def config_path(self) -> Path:
        return self.workdir / f"{self.name}.yaml"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}"

    def start(self, *, wait_ready: bool = True, timeout: float = _START_TIMEOUT_S) -> AgentProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config))
        ready = self.workdir / f"{self.name}.ready.json"
        ready.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "citadel-agent"),
                    "run",
                    "--config",
                    str(self.config_path),
                    "--ready-file",
                    str(ready),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError):
                document = json.loads(ready.read_text())
                if document.get("pid") == self.process.pid:
                    self.pid = int(document["pid"])
                    self.status_port = int(document["status_port"])
                    break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
            time.sleep(0.05)
        if wait_ready:
            self.wait_ready(timeout=max(1.0, deadline - time.monotonic()))
        return self

    def wait_ready(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.get("/ready")[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} never became ready:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(_STOP_TIMEOUT_S)
        self.process = None

    def kill(self) -> None:
        """SIGKILL by PID: no clean shutdown, the socket file stays behind (stale)."""
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(_STOP_TIMEOUT_S)
        self.process = None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.status_url}{path}", timeout=5) as reply:  # noqa: S310
                return reply.status, reply.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()
        except OSError:
            return 0, ""

    def status(self) -> dict[str, Any]:
        code, body = self.get("/status")
        assert code == 200, body
        document = json.loads(body)
        assert isinstance(document, dict)
        return document

    def serial(self, name: str = "default") -> str | None:
        for secret in self.status().get("secrets", []):
            if secret["name"] == name:
                return str(secret.get("serial"))
        return None

    def metric(self, sample: str) -> float:
        """The value of one exposition line, e.g. ``citadel_agent_ca_unreachable``."""
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith(sample + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def rotate(self) -> None:
        request = urllib.request.Request(f"{self.status_url}/rotate", method="POST")  # noqa: S310
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
            assert reply.status == 202

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")
