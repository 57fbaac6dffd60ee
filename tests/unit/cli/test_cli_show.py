from __future__ import annotations

import json
from pathlib import Path

import pytest

from citadel.identity.bundle import TrustBundle
from citadel.identity.spiffe_id import TrustDomain
from tests.unit.cli.cli_testkit import assert_fails, assert_ok, initialised, run

TD = TrustDomain("cluster.local")


def test_ca_show_lists_root_and_intermediate_with_fingerprints_and_expiry(
    tmp_path: Path,
) -> None:
    data = initialised(tmp_path / "data")
    out = assert_ok(run(data, "ca", "show"))
    lines = out.splitlines()
    assert lines[0] == "Trust domain: cluster.local"
    assert lines[1].split()[:2] == ["KIND", "STATE"]
    assert [line.split()[:2] for line in lines[2:]] == [
        ["root", "active"],
        ["intermediate", "active"],
    ]
    assert "3649d" in lines[2] and "364d" in lines[3]


def test_ca_show_json_names_the_chain(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    rows = json.loads(assert_ok(run(data, "ca", "show", "--output", "json")))
    root, intermediate = rows
    assert (root["kind"], intermediate["kind"]) == ("root", "intermediate")
    assert intermediate["parent_id"] == root["id"]
    assert len(root["sha256"]) == 64


def test_bundle_show_pem_parses_as_the_root(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    bundle = TrustBundle.from_pem(TD, assert_ok(run(data, "bundle", "show", "--format", "pem")))
    rows = json.loads(assert_ok(run(data, "ca", "show", "--output", "json")))
    assert bundle.fingerprints() == {rows[0]["sha256"]}


def test_bundle_show_spiffe_is_a_valid_spiffe_bundle(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    pem = TrustBundle.from_pem(TD, assert_ok(run(data, "bundle", "show")))
    spiffe = TrustBundle.from_spiffe_json(
        TD, assert_ok(run(data, "bundle", "show", "--format", "spiffe"))
    )
    assert spiffe.x509_authorities == pem.x509_authorities
    document = json.loads(assert_ok(run(data, "bundle", "show", "--format", "spiffe")))
    assert document["keys"][0]["use"] == "x509-svid"


def test_bundle_show_refuses_an_unknown_format(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    assert_fails(run(data, "bundle", "show", "--format", "der"), 2, "'--format'")


@pytest.mark.parametrize(
    "command", [["ca", "show"], ["bundle", "show"], ["cert", "list"], ["audit", "verify"]],
    ids=["ca-show", "bundle-show", "cert-list", "audit-verify"],
)
def test_commands_on_a_missing_data_dir_say_to_run_init(
    tmp_path: Path, command: list[str]
) -> None:
    assert_fails(run(tmp_path / "absent", *command), 1, "does not exist", "citadel init")
    assert not (tmp_path / "absent").exists()


def test_commands_on_a_corrupted_database_fail_cleanly(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    (data / "citadel.db").write_bytes(b"garbage" * 1000)
    for name in ("citadel.db-wal", "citadel.db-shm"):
        (data / name).unlink(missing_ok=True)
    assert_fails(run(data, "ca", "show"), 1, "database cannot be opened")


def test_data_dir_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    assert_fails(run(tmp_path / "file", "ca", "show"), 2, "--data-dir")
