"""The CA's disk fills up, or its data directory is read-only: clear errors, no damage.

The data directory is a 16 MiB tmpfs in a private mount namespace (see
:mod:`tests.resilience.private_mount`: as root, ``chmod`` stops no write). A full disk
makes every CSR fail at once with UNAVAILABLE (the certificate is withheld because its
issuance could not be recorded) until space returns; a read-only data directory stops the
commands with a one-line error and no traceback. Afterwards the audit chain verifies and
holds exactly the certificates that were handed out.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from citadel.store.repository import Repository
from tests.integration.server.serve_process import CITADEL, PASSPHRASE
from tests.resilience.harness import IssuedLog, MtlsSigner, audit_issued_serials
from tests.resilience.private_mount import PrivateTmpfs
from tests.unit.hygiene.plugin import scan_log_file

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

SPIFFE_ID = "spiffe://cluster.local/ns/disk/sa/client"
ENV = {"CITADEL_KEY_PASSPHRASE": PASSPHRASE}
ARGS = [
    "--workers", "1", "--listen", "127.0.0.1:0", "--mtls-listen", "127.0.0.1:0",
    "--metrics-listen", "off", "--rate", "0", "--identity-rate", "0", "--grace", "1s",
]  # fmt: skip


class ServeInside:
    """``citadel serve`` started inside the tmpfs's namespace; stopped by PID."""

    def __init__(self, tmpfs: PrivateTmpfs, data: Path, workdir: Path) -> None:
        self.ready_file = workdir / "ready.json"
        self.log_file = workdir / "serve.log"
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(
                [*tmpfs.prefix(), CITADEL, "--data-dir", str(data), "serve", *ARGS,
                 "--ready-file", str(self.ready_file)],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **ENV},
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while not self.ready_file.exists():
            assert self.process.poll() is None and time.monotonic() < deadline, self.log()
            time.sleep(0.1)
        self.ready = json.loads(self.ready_file.read_text())

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        scan_log_file(self.log_file)
        return code


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[PrivateTmpfs]:
    fs = PrivateTmpfs(tmp_path / "data", size_bytes=16 << 20).start()
    try:
        yield fs
    finally:
        fs.stop()


def _citadel(tmpfs: PrivateTmpfs, *argv: str) -> subprocess.CompletedProcess[str]:
    return tmpfs.run(CITADEL, "--data-dir", str(tmpfs.mount_point), *argv, env=ENV)


def _signer(tmpfs: PrivateTmpfs, serve: ServeInside, out: Path) -> MtlsSigner:
    minted = _citadel(tmpfs, "cert", "mint", "--spiffe-id", SPIFFE_ID, "--out", str(out))
    assert minted.returncode == 0, minted.stderr
    root = _citadel(tmpfs, "bundle", "show").stdout.encode()
    return MtlsSigner(
        f"127.0.0.1:{serve.ready['mtls_port']}",
        root,
        SPIFFE_ID,
        (out / "cert-chain.pem").read_bytes(),
        (out / "key.pem").read_bytes(),
    )


def _sign(signer: MtlsSigner, times: int, log: IssuedLog) -> None:
    for _ in range(times):
        try:
            log.received(signer.sign())
        except grpc.RpcError as exc:
            log.refused(exc)


def _stored_and_audited(tmpfs: PrivateTmpfs, copy_to: Path) -> tuple[set[str], list[str]]:
    """Certificates and audited serials, read from a copy of the stopped CA's database
    (SQLite resolves ``/proc/<pid>/root`` to this namespace's ``/``, so it cannot open the
    file in place)."""
    copy_to.mkdir()
    for name in ("citadel.db", "citadel.db-wal"):
        if tmpfs.view(name).exists():
            shutil.copyfile(tmpfs.view(name), copy_to / name)
    url = f"sqlite:///{copy_to / 'citadel.db'}"
    repository = Repository.open(url, auto_upgrade=False)
    try:
        stored = {c.serial_hex for c in repository.list_certificates(limit=10_000)}
    finally:
        repository.close()
    return stored, audit_issued_serials(url)


def test_a_full_disk_refuses_csrs_with_unavailable_and_recovers_when_space_returns(
    tmpfs: PrivateTmpfs, tmp_path: Path
) -> None:
    serve = ServeInside(tmpfs, tmpfs.mount_point, tmp_path)
    before, full, after = IssuedLog(), IssuedLog(), IssuedLog()
    try:
        signer = _signer(tmpfs, serve, tmp_path / "minted")
        _sign(signer, 5, before)
        filled = tmpfs.fill()
        started = time.monotonic()
        _sign(signer, 5, full)
        refused_in = time.monotonic() - started
        os.unlink(tmpfs.view("filler"))
        _sign(signer, 5, after)
        signer.close()
    finally:
        code = serve.stop()
    log = serve.log()
    assert len(before.serials) == 5 and len(after.serials) == 5, (before, after)
    assert full.serials == [] and full.refusals == {"UNAVAILABLE": 5}, full.details
    assert refused_in < 5.0
    assert code == 0 and "Traceback" not in log
    assert "database or disk is full" in log and "certificate withheld" in log
    withheld = set(re.findall(r"issuance of serial ([0-9a-f]+) .* not recorded", log))
    stored, audited = _stored_and_audited(tmpfs, tmp_path / "copy")
    assert len(withheld) == 5 and not withheld & stored, "a withheld certificate was stored"
    assert set(before.serials + after.serials) <= set(audited)
    assert stored == set(audited) and len(audited) == len(set(audited))
    verify = _citadel(tmpfs, "audit", "verify")
    assert verify.returncode == 0 and "Audit chain OK" in verify.stdout, verify.stderr
    print(
        f"disk full ({filled >> 10} KiB of filler): 5 CSRs refused UNAVAILABLE in "
        f"{refused_in * 1000:.0f} ms, then 5 issued once space returned"
    )


def test_a_read_only_data_directory_is_a_clear_error_and_loses_nothing(
    tmpfs: PrivateTmpfs, tmp_path: Path
) -> None:
    assert _citadel(tmpfs, "init").returncode == 0
    minted = _citadel(tmpfs, "cert", "mint", "--spiffe-id", SPIFFE_ID, "--out", str(tmp_path / "a"))
    assert minted.returncode == 0, minted.stderr
    tmpfs.remount(read_only=True)
    try:
        commands = (
            ["serve", *ARGS],
            ["cert", "mint", "--spiffe-id", SPIFFE_ID, "--out", str(tmp_path / "b")],
            ["token", "create", "--spiffe-id", SPIFFE_ID],
        )
        for argv in commands:
            result = tmpfs.run(
                "timeout", "60", CITADEL, "--data-dir", str(tmpfs.mount_point), *argv, env=ENV
            )
            assert result.returncode == 1, (argv, result.returncode, result.stderr[-500:])
            assert "Traceback" not in result.stderr, result.stderr
            lines = result.stderr.strip().splitlines()
            assert lines[-1].startswith("Error: the CA database cannot be opened"), lines
    finally:
        tmpfs.remount(read_only=False)
    verify = _citadel(tmpfs, "audit", "verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    stored, audited = _stored_and_audited(tmpfs, tmp_path / "copy")
    assert stored == set(audited) and stored, "the certificate minted before is gone"
    assert not (tmp_path / "b").exists() or not any((tmp_path / "b").iterdir())
