"""Running the real ``citadel serve`` as a subprocess (started and stopped by PID)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from cryptography import x509

CITADEL = str(Path(sys.executable).with_name("citadel"))
PASSPHRASE = "server-process-test-passphrase"


def citadel(data_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one ``citadel`` command against ``data_dir``."""
    return subprocess.run(
        [CITADEL, "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "CITADEL_KEY_PASSPHRASE": PASSPHRASE},
    )


class CitadelServe:
    """``citadel --data-dir D serve ARGS --ready-file R``; waits for R, stops by PID."""

    def __init__(self, data_dir: Path, args: Sequence[str], *, ready_timeout: float = 120) -> None:
        self.data_dir = data_dir
        self.ready_file = data_dir.parent / f"{data_dir.name}-ready.json"
        self.log_file = data_dir.parent / f"{data_dir.name}-serve.log"
        self.args = list(args)
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: dict[str, Any] = {}

    def start(self) -> CitadelServe:
        self.ready_file.unlink(missing_ok=True)
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    CITADEL,
                    "--data-dir",
                    str(self.data_dir),
                    "serve",
                    *self.args,
                    "--ready-file",
                    str(self.ready_file),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "CITADEL_KEY_PASSPHRASE": PASSPHRASE},
            )
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"citadel serve exited early:\n{self.log()}")
            if self.ready_file.exists():
                self.ready = json.loads(self.ready_file.read_text())
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"citadel serve was not ready in time:\n{self.log()}")

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ready['port']}"

    def root_pem(self) -> bytes:
        result = citadel(self.data_dir, "bundle", "show")
        assert result.returncode == 0, result.stderr
        return result.stdout.encode()

    def terminate(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)

    def __enter__(self) -> CitadelServe:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def serving_certificate(port: int, root_pem: bytes) -> x509.Certificate:
    """Open a fresh TLS connection and return the certificate the server presents."""
    context = ssl.create_default_context(cadata=root_pem.decode())
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def child_pids(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children.extend(int(c) for c in text)
    return children
