from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.unit.cli.cli_testkit import WORKLOAD, assert_fails, assert_ok, initialised, run


def _mint(data: Path, out: Path) -> None:
    assert_ok(run(data, "cert", "mint", "--spiffe-id", WORKLOAD, "--out", str(out)))


def test_audit_verify_passes_on_an_untouched_log(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    for name in ("a", "b", "c"):
        _mint(data, tmp_path / name)
    assert assert_ok(run(data, "audit", "verify")).strip() == "Audit chain OK: 3 events verified"


def test_audit_verify_finds_an_edited_event_and_names_its_seq(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    for name in ("a", "b", "c"):
        _mint(data, tmp_path / name)
    with sqlite3.connect(data / "citadel.db") as db:
        db.execute("UPDATE audit_events SET subject = 'spiffe://cluster.local/evil' WHERE seq = 2")
    assert_fails(run(data, "audit", "verify"), 1, "audit chain is broken at seq 2")


def test_audit_verify_finds_an_edited_certificate_row(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    _mint(data, tmp_path / "a")
    with sqlite3.connect(data / "citadel.db") as db:
        db.execute("UPDATE issued_certificates SET spiffe_id = 'spiffe://cluster.local/evil'")
    assert_fails(run(data, "audit", "verify"), 1, "audit chain is broken")
