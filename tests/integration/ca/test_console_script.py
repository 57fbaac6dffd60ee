"""The installed ``citadel`` console script, run as a real subprocess, end to end."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.peers import require_binary, require_peer

WORKLOAD = "spiffe://cluster.local/ns/default/sa/web"
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def script() -> Path:
    path = Path(sys.executable).parent / "citadel"
    require_peer(path.is_file(), f"console script {path} missing (pip install -e .)")
    return path


class Citadel:
    def __init__(self, script: Path, data_dir: Path, passphrase: str) -> None:
        self.script = script
        self.data_dir = data_dir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CITADEL_")}
        self.env["CITADEL_KEY_PASSPHRASE"] = passphrase

    def __call__(self, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.script), "--data-dir", str(self.data_dir), *args],
            capture_output=True, text=True, timeout=60, env=self.env, check=False,
        )
        assert result.returncode == code, (args, result.returncode, result.stdout, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        if code:
            errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
            assert len(errors) == 1, result.stderr
        return result


def test_operator_workflow_through_the_console_script(script: Path, tmp_path: Path) -> None:
    openssl = require_binary("openssl", hint="install the Debian 'openssl' package")
    citadel = Citadel(script, tmp_path / "data", "integration passphrase")

    citadel("ca", "show", code=1)  # nothing yet: a clear error, not a traceback
    assert "Initialised" in citadel("init").stdout
    assert "already initialised" in citadel("init", code=1).stderr
    assert "intermediate" in citadel("ca", "show").stdout
    bundle = citadel("bundle", "show", "--format", "pem").stdout
    assert bundle.startswith("-----BEGIN CERTIFICATE-----")
    assert json.loads(citadel("bundle", "show", "--format", "spiffe").stdout)["keys"]

    out = tmp_path / "svid"
    citadel("cert", "mint", "--spiffe-id", WORKLOAD, "--ttl", "1h", "--out", str(out))
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    assert (out / "root-cert.pem").read_text() == bundle
    verified = subprocess.run(
        [openssl, "verify", "-x509_strict", "-CAfile", str(out / "root-cert.pem"),
         "-untrusted", str(out / "cert-chain.pem"), str(out / "cert-chain.pem")],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    pair = subprocess.run(
        [openssl, "x509", "-noout", "-pubkey", "-in", str(out / "cert-chain.pem")],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    key_pub = subprocess.run(
        [openssl, "pkey", "-pubout", "-in", str(out / "key.pem")],
        capture_output=True, text=True, timeout=30, check=True,
    ).stdout
    assert pair == key_pub

    rows = json.loads(citadel("cert", "list", "--output", "json").stdout)
    assert [row["spiffe_id"] for row in rows] == [WORKLOAD]
    serial = rows[0]["serial"]
    assert "BEGIN CERTIFICATE" in citadel("cert", "show", serial, "--output", "pem").stdout
    assert "no certificate with serial" in citadel("cert", "show", "abc123", code=1).stderr
    assert "not a duration" in citadel(
        "cert", "mint", "--spiffe-id", WORKLOAD, "--ttl", "forever", "--out", str(out), code=2
    ).stderr

    assert "Audit chain OK: 1 events verified" in citadel("audit", "verify").stdout
    with sqlite3.connect(tmp_path / "data" / "citadel.db") as db:
        db.execute("UPDATE audit_events SET action = 'forged' WHERE seq = 1")
    assert "broken at seq 1" in citadel("audit", "verify", code=1).stderr


def test_wrong_passphrase_and_corrupted_data_fail_cleanly(script: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    Citadel(script, data, "right")("init")
    wrong = Citadel(script, data, "wrong")
    stderr = wrong("cert", "mint", "--spiffe-id", WORKLOAD, "--out", str(tmp_path / "o"),
                   code=1).stderr
    assert "wrong key passphrase" in stderr
    (data / "citadel.db").write_bytes(b"\x00garbage" * 512)
    for name in ("citadel.db-wal", "citadel.db-shm"):
        (data / name).unlink(missing_ok=True)
    assert "database cannot be opened" in wrong("ca", "show", code=1).stderr
