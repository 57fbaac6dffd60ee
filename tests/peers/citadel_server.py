"""The REAL CA (``citadel serve``) as a subprocess, for integration tests.

It runs in a temporary data directory, with its TLS, mTLS and metrics listeners on
127.0.0.1 (port 0 the first time; a restart reuses the ports so that clients configured
with the old address find it again). Readiness is the ``--ready-file`` JSON
``{"port", "mtls_port", "metrics_port", "pid"}``; it is stopped by that PID (SIGTERM,
then SIGKILL). Join tokens come from ``citadel token create``; workload certificates for
other identities from ``citadel cert mint``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["CitadelServer", "citadel_binary", "start_citadel_server"]

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0
_CLI_TIMEOUT_S = 60.0


def citadel_binary() -> str:
    return str(Path(sys.executable).parent / "citadel")


@dataclass
class CitadelServer:
    data_dir: Path
    trust_domain: str
    workdir: Path
    port: int = 0
    mtls_port: int = 0
    metrics_port: int = 0
    pid: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    extra_args: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mtls_address(self) -> str:
        return f"127.0.0.1:{self.mtls_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "citadel-serve.log"

    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                citadel_binary(),
                "--data-dir",
                str(self.data_dir),
                "--trust-domain",
                self.trust_domain,
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=_CLI_TIMEOUT_S,
            check=False,
        )

    def cli(self, *args: str) -> str:
        result = self._cli(*args)
        if result.returncode != 0:
            raise RuntimeError(f"citadel {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, *, timeout: float = _START_TIMEOUT_S) -> CitadelServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        ready = self.workdir / "citadel-ready.json"
        ready.unlink(missing_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                [
                    citadel_binary(),
                    "--data-dir",
                    str(self.data_dir),
                    "--trust-domain",
                    self.trust_domain,
                    "serve",
                    "--workers",
                    "1",
                    "--listen",
                    f"127.0.0.1:{self.port}",
                    "--mtls-listen",
                    f"127.0.0.1:{self.mtls_port}",
                    "--metrics-listen",
                    f"127.0.0.1:{self.metrics_port}",
                    "--ready-file",
                    str(ready),
                    *self.extra_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while True:
            document = _read_json(ready)
            if document is not None and document.get("pid") == self.process.pid:
                break
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"citadel serve did not become ready:\n{self.log_tail()}")
            time.sleep(0.1)
        self.pid = int(document["pid"])
        self.port = int(document["port"])
        self.mtls_port = int(document["mtls_port"])
        self.metrics_port = int(document["metrics_port"])
        return self

    def stop(self) -> None:
        """Stop the server by PID (SIGTERM, then SIGKILL after a bounded wait)."""
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

    def restart(self) -> CitadelServer:
        """Start again on the same ports and data directory (after :meth:`stop`)."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # --- operator commands -----------------------------------------------------------------
    def root_bundle_pem(self) -> bytes:
        return self.cli("bundle", "show").encode("ascii")

    def create_join_token(self, spiffe_id: str, *, ttl: str = "10m") -> str:
        """A one-time join token from ``citadel token create`` (it works for one CSR)."""
        output = self.cli(
            "token", "create", "--spiffe-id", spiffe_id, "--ttl", ttl, "--output", "json"
        )
        token = json.loads(output)["token"]
        assert isinstance(token, str) and token
        return token

    def mint(self, spiffe_id: str, out_dir: Path, *, ttl: str = "1h") -> Path:
        """A certificate for ``spiffe_id`` issued directly by the CA (cert-chain.pem, key.pem)."""
        self.cli("cert", "mint", "--spiffe-id", spiffe_id, "--ttl", ttl, "--out", str(out_dir))
        return out_dir


def _read_json(path: Path) -> dict[str, object] | None:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def start_citadel_server(
    workdir: Path, *, trust_domain: str = "example.org", extra_args: tuple[str, ...] = ()
) -> CitadelServer:
    server = CitadelServer(
        data_dir=workdir / "ca-data",
        trust_domain=trust_domain,
        workdir=workdir,
        extra_args=extra_args,
    )
    return server.start()
