"""``citadel ca rotate ...``: the steps, their refusals (one-line error, exit 1, nothing
changed), ``status`` and the trust bundle an operator sees during a rotation."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citadel.ca.rotation.acks import ACK_SNAPSHOT_FILE, AckSnapshot, write_snapshot
from citadel.identity.pem import load_certificates_pem
from tests.unit.cli.cli_testkit import WORKLOAD, assert_fails, assert_ok, initialised, run

SERIAL = re.compile(r"Issued serial ([0-9a-f]+) ")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return initialised(tmp_path / "data")


def _state(data: Path) -> tuple[object, str]:
    """What a refused command must not change: the authorities and the audit chain."""
    authorities = json.loads(assert_ok(run(data, "ca", "show", "--output", "json")))
    audit = assert_ok(run(data, "audit", "verify"))
    return authorities, audit


def _mint(data: Path, out: Path) -> str:
    text = assert_ok(run(data, "cert", "mint", "--spiffe-id", WORKLOAD, "--out", str(out)))
    match = SERIAL.search(text)
    assert match, text
    return match.group(1)


def _roles(data: Path) -> dict[str, list[str]]:
    document = json.loads(assert_ok(run(data, "ca", "rotate", "status", "--output", "json")))
    return {
        slot: [a["role"] for a in document[slot]["authorities"]]
        for slot in ("root", "intermediate")
    }


def test_bundle_show_includes_a_prepared_root(data: Path) -> None:
    assert len(load_certificates_pem(assert_ok(run(data, "bundle", "show")))) == 1
    text = assert_ok(run(data, "ca", "rotate", "prepare", "--root"))
    assert text.startswith("Prepared root ") and "in the trust bundle now" in text
    assert len(load_certificates_pem(assert_ok(run(data, "bundle", "show")))) == 2
    spiffe = json.loads(assert_ok(run(data, "bundle", "show", "--format", "spiffe")))
    assert len(spiffe["keys"]) == 2


def test_a_root_rotation_through_the_cli(data: Path, tmp_path: Path) -> None:
    assert_ok(run(data, "ca", "rotate", "prepare", "--root"))
    refused = run(data, "ca", "rotate", "activate", "--root")
    assert_fails(refused, 1, "agents may not all have it", "--force")
    assert_ok(run(data, "ca", "rotate", "activate", "--root", "--propagation-delay", "0s"))
    assert _roles(data)["root"] == ["current", "draining"]
    _mint(data, tmp_path / "leaf")  # signed by the new intermediate: the old root has none
    text = assert_ok(run(data, "ca", "rotate", "retire", "--root"))
    assert "no longer in the trust bundle" in text
    assert len(load_certificates_pem(assert_ok(run(data, "bundle", "show")))) == 1


def test_prepare_prints_json_when_asked(data: Path) -> None:
    document = json.loads(assert_ok(run(data, "ca", "rotate", "prepare", "--output", "json")))
    assert document["action"] == "prepare" and document["slot"] == "intermediate"
    assert len(document["authorities"]) == 1


@pytest.mark.parametrize("flag", ["--root", "--intermediate"])
def test_activating_a_slot_that_was_never_prepared_fails_and_changes_nothing(
    data: Path, flag: str
) -> None:
    before = _state(data)
    assert_fails(run(data, "ca", "rotate", "activate", flag, "--force"), 1, "nothing to activate")
    assert _state(data) == before


def test_retiring_while_leaves_are_valid_fails_unless_forced(data: Path, tmp_path: Path) -> None:
    serial = _mint(data, tmp_path / "leaf")
    assert_ok(run(data, "ca", "rotate", "prepare"))
    refused = run(data, "ca", "rotate", "activate")
    assert_fails(refused, 1, "may not all have its CRL", "--force")
    assert_ok(run(data, "ca", "rotate", "activate", "--intermediate-delay", "0s"))
    before = _state(data)
    error = assert_fails(run(data, "ca", "rotate", "retire"), 1, "1 unexpired leaf", "--force")
    assert serial in error
    assert _state(data) == before
    assert "Retired intermediate" in assert_ok(run(data, "ca", "rotate", "retire", "--force"))


def test_rollback_with_nothing_to_return_to_fails_and_changes_nothing(data: Path) -> None:
    before = _state(data)
    assert_fails(run(data, "ca", "rotate", "rollback", "--root"), 1, "nothing to roll back")
    assert _state(data) == before


def test_status_shows_every_slot_and_unknown_acknowledgements(data: Path) -> None:
    assert_ok(run(data, "ca", "rotate", "prepare", "--root"))
    text = assert_ok(run(data, "ca", "rotate", "status"))
    assert "agents acknowledged: unknown" in text
    assert re.search(r"^root\s+current\s", text, re.M) and re.search(r"^root\s+next\s", text, re.M)
    assert re.search(r"^intermediate\s+current\s", text, re.M)
    assert "the next one may activate from" in text
    document = json.loads(assert_ok(run(data, "ca", "rotate", "status", "--output", "json")))
    assert document["bundle"]["agents_acknowledged"] == "unknown"
    assert len(document["bundle"]["roots"]) == 2


def test_status_counts_agents_that_acknowledged_the_current_bundle(data: Path) -> None:
    document = json.loads(assert_ok(run(data, "ca", "rotate", "status", "--output", "json")))
    version = document["bundle"]["version"]
    now = datetime.now(UTC)
    write_snapshot(data / ACK_SNAPSHOT_FILE, AckSnapshot({version: 3, "0ld": 2}), now)
    text = assert_ok(run(data, "ca", "rotate", "status"))
    assert "agents acknowledged: 3 of 5 known" in text


def test_rotation_commands_on_a_missing_ca_fail_cleanly(tmp_path: Path) -> None:
    assert_fails(run(tmp_path / "none", "ca", "rotate", "status"), 1, "citadel init")
