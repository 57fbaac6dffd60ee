"""Shared pieces of the resilience tests: a signing client, the audit's serials, worker PIDs.

Clients renew over mTLS with a certificate from ``citadel cert mint`` (no Kubernetes API
is needed): the CA takes the identity from the verified client certificate, and the CSR
asks for that same identity.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from citadel.identity.pem import load_certificates_pem, serial_hex
from citadel.store.repository import Repository
from tests.fakes.istio_agent_client import IstioAgentClient, new_workload_csr
from tests.integration.server.serve_process import citadel

__all__ = [
    "IssuedLog",
    "MtlsSigner",
    "audit_issued_serials",
    "audit_verify",
    "mint",
    "sign_until",
    "worker_pids",
]


def mint(data_dir: Path, spiffe_id: str, out: Path, *extra: str) -> tuple[bytes, bytes]:
    """``citadel cert mint``: (chain PEM, key PEM) for ``spiffe_id``."""
    result = citadel(
        data_dir, *extra, "cert", "mint", "--spiffe-id", spiffe_id, "--ttl", "1h",
        "--out", str(out),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return (out / "cert-chain.pem").read_bytes(), (out / "key.pem").read_bytes()


def audit_verify(data_dir: Path, *extra: str) -> str:
    """``citadel audit verify``; fails the test unless the chain verifies."""
    result = citadel(data_dir, *extra, "audit", "verify")
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def audit_issued_serials(url: str) -> list[str]:
    """The serial of every issuance event in the audit log, in chain order."""
    serials: list[str] = []
    repository = Repository.open(url, auto_upgrade=False)
    try:
        after = 0
        while page := repository.list_audit(after_seq=after, limit=5000):
            for event in page:
                if event.action == "issue":
                    serial = event.payload.get("serial") or event.payload.get("serial_hex")
                    assert isinstance(serial, str), event
                    serials.append(serial)
            after = page[-1].seq
        for serial in set(serials):
            assert repository.get_certificate(serial).serial_hex == serial
    finally:
        repository.close()
    return serials


class MtlsSigner:
    """One workload renewing its identity over the CA's mTLS port."""

    def __init__(self, target: str, root_pem: bytes, spiffe_id: str, chain: bytes, key: bytes):
        self.spiffe_id = spiffe_id
        self._client = IstioAgentClient(
            target, root_pem, client_chain_pem=chain, client_key_pem=key, cluster_id=None,
            timeout=10.0,
        )  # fmt: skip

    def sign(self) -> str:
        """One CSR; returns the issued leaf's serial (raises grpc.RpcError when refused)."""
        _, csr = new_workload_csr(self.spiffe_id)
        chain = self._client.csr_sign(csr)
        return serial_hex(load_certificates_pem(chain[0])[0])

    def close(self) -> None:
        self._client.close()


@dataclass
class IssuedLog:
    """What the clients saw: serials received, and refusals by status code."""

    serials: list[str] = field(default_factory=list)
    refusals: dict[str, int] = field(default_factory=dict)
    details: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self, serial: str) -> None:
        with self.lock:
            self.serials.append(serial)

    def refused(self, error: grpc.RpcError) -> None:
        code = error.code().name if hasattr(error, "code") else "UNKNOWN"
        with self.lock:
            self.refusals[code] = self.refusals.get(code, 0) + 1
            if len(self.details) < 20:
                self.details.append(
                    f"{code}: {error.details() if hasattr(error, 'details') else error}"
                )


def sign_until(signers: list[MtlsSigner], stop: Callable[[], bool], log: IssuedLog) -> None:
    """Each signer signs in its own thread, back to back, until ``stop()``."""

    def loop(signer: MtlsSigner) -> None:
        while not stop():
            try:
                log.received(signer.sign())
            except grpc.RpcError as exc:
                log.refused(exc)
                time.sleep(0.05)

    threads = [threading.Thread(target=loop, args=(s,), daemon=True) for s in signers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive(), "a signing client hung"


def worker_pids(supervisor: int) -> list[int]:
    """The supervisor's worker processes (not multiprocessing's resource tracker)."""
    found: list[int] = []
    for task in Path(f"/proc/{supervisor}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                found.append(int(child))
    return sorted(found)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
