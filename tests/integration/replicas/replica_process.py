"""CA replicas for the tests: real ``citadel serve`` subprocesses on one database.

Each replica has its own data directory, but ``<data dir>/keys`` is a symbolic link to one
shared key directory (as an NFS mount or a copied Secret would be) and all use the same key
passphrase, so they sign with the same authorities. Readiness is the ``--ready-file``; the
process is stopped by its PID (SIGTERM, or SIGKILL to simulate a crash). Leadership is read
from the replica's own ``/metrics`` (``citadel_server_is_leader``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "CITADEL",
    "PASSPHRASE",
    "TRUST_DOMAIN",
    "Replica",
    "citadel_cli",
    "replica_config",
    "wait_until",
]

CITADEL = str(Path(sys.executable).with_name("citadel"))
PASSPHRASE = "replica-test-passphrase"
TRUST_DOMAIN = "cluster.local"
_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 15.0


def _env() -> dict[str, str]:
    return {**os.environ, "CITADEL_KEY_PASSPHRASE": PASSPHRASE}


def citadel_cli(
    db_url: str, data_dir: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """One ``citadel`` operator command against the shared database."""
    return subprocess.run(
        [CITADEL, "--data-dir", str(data_dir), "--db-url", db_url,
         "--trust-domain", TRUST_DOMAIN, *args],
        capture_output=True, text=True, timeout=timeout, check=False, env=_env(),
    )  # fmt: skip


def replica_config(
    *,
    kube_url: str,
    kube_token_file: Path,
    kube_issuer: str,
    lease_seconds: float = 3.0,
    renew_seconds: float = 2.0,
    retry_seconds: float = 0.5,
    **extra: Any,
) -> dict[str, Any]:
    """The YAML ``citadel serve --config`` of a test replica (short lease, no rate limits)."""
    config: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "mtls_listen": None,
        "metrics_listen": "127.0.0.1:0",
        "workers": 1,
        "threads": 8,
        "rate_limit": None,
        "identity_rate_limit": None,
        "join_tokens": False,
        "kubernetes": {
            "api_server": kube_url,
            "token_file": str(kube_token_file),
            "issuers": [kube_issuer],
        },
        "leader_election": {
            "backend": "database",
            "lease_duration": lease_seconds,
            "renew_deadline": renew_seconds,
            "retry_period": retry_seconds,
        },
        "authority_watch_interval": 1,
    }
    config.update(extra)
    return config


def wait_until(predicate: Any, timeout: float, interval: float = 0.1) -> float | None:
    """Poll ``predicate`` until true; the seconds it took, or None on timeout."""
    started = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            return None
        time.sleep(interval)


@dataclass
class Replica:
    name: str
    workdir: Path
    db_url: str
    shared_keys: Path
    config: dict[str, Any]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    ready: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.workdir / self.name / "data"

    @property
    def ready_file(self) -> Path:
        return self.workdir / self.name / "ready.json"

    @property
    def log_file(self) -> Path:
        return self.workdir / self.name / "serve.log"

    @property
    def pid(self) -> int:
        return int(self.ready["pid"])

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.ready['port']}"

    # --- process ---------------------------------------------------------------------------
    def launch(self) -> Replica:
        """Start the process (do not wait); call :meth:`wait_ready` next."""
        self.shared_keys.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = self.data_dir / "keys"
        if not keys.is_symlink():
            keys.symlink_to(self.shared_keys, target_is_directory=True)
        config_file = self.workdir / self.name / "server.yaml"
        config_file.write_text(yaml.safe_dump(self.config))
        self.ready_file.unlink(missing_ok=True)
        self.ready = {}
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                [CITADEL, "--data-dir", str(self.data_dir), "--db-url", self.db_url,
                 "--trust-domain", TRUST_DOMAIN, "serve", "--config", str(config_file),
                 "--ready-file", str(self.ready_file)],
                stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
            )  # fmt: skip
        return self

    def wait_ready(self, timeout: float = _START_TIMEOUT_S) -> Replica:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError):
                document = json.loads(self.ready_file.read_text())
                if document.get("pid") == self.process.pid:
                    self.ready = document
                    return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"replica {self.name} did not become ready:\n{self.log()}")
            time.sleep(0.1)

    def start(self) -> Replica:
        return self.launch().wait_ready()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL by PID: a crash, nothing is released."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(_STOP_TIMEOUT_S)

    def stop(self) -> None:
        """SIGTERM by PID (graceful), SIGKILL if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(_STOP_TIMEOUT_S)

    def log(self, lines: int = 60) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # --- observation -----------------------------------------------------------------------
    def metric(self, name: str) -> float | None:
        """A sample of the replica's /metrics, None when absent or unreachable."""
        url = f"http://127.0.0.1:{self.ready['metrics_port']}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                text = answer.read().decode()
        except OSError:
            return None
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name:
                    return float(sample.value)
        return None

    def is_leader(self) -> bool:
        return self.metric("citadel_server_is_leader") == 1.0
