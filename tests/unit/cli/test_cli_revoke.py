"""``citadel cert revoke`` and ``citadel ca revoke-intermediate``; ``cert list --revoked``
shows the result. Bad input: one-line error, non-zero exit, nothing changed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from citadel.cli import cli
from tests.unit.cli.cli_testkit import WORKLOAD, assert_fails, assert_ok, initialised, run

SERIAL = re.compile(r"Issued serial ([0-9a-f]+) ")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return initialised(tmp_path / "data")


def _mint(data: Path, out: Path, spiffe_id: str = WORKLOAD) -> str:
    text = assert_ok(run(data, "cert", "mint", "--spiffe-id", spiffe_id, "--out", str(out)))
    match = SERIAL.search(text)
    assert match, text
    return match.group(1)


def _state(data: Path) -> tuple[str, str, str]:
    certificates = assert_ok(run(data, "cert", "list", "--output", "json"))
    authorities = assert_ok(run(data, "ca", "show", "--output", "json"))
    return certificates, authorities, assert_ok(run(data, "audit", "verify"))


def test_a_revoked_certificate_is_listed_by_cert_list_revoked(data: Path, tmp_path: Path) -> None:
    serial = _mint(data, tmp_path / "a")
    other = _mint(data, tmp_path / "b")
    text = assert_ok(run(data, "cert", "revoke", serial.upper(), "--reason", "keycompromise"))
    assert serial in text and "keyCompromise" in text
    listed = json.loads(assert_ok(run(data, "cert", "list", "--revoked", "--output", "json")))
    assert [(c["serial"], c["revocation_reason"]) for c in listed] == [(serial, "keyCompromise")]
    table = assert_ok(run(data, "cert", "list", "--revoked"))
    assert serial in table and "revoked" in table and other not in table
    assert other in assert_ok(run(data, "cert", "list", "--not-revoked"))
    assert "Audit chain OK" in assert_ok(run(data, "audit", "verify"))


def test_revoking_an_unknown_serial_fails_and_changes_nothing(data: Path, tmp_path: Path) -> None:
    _mint(data, tmp_path / "a")
    before = _state(data)
    assert_fails(run(data, "cert", "revoke", "abcdef"), 1, "no certificate with serial abcdef")
    assert _state(data) == before


def test_revoking_twice_fails_and_keeps_the_first_reason(data: Path, tmp_path: Path) -> None:
    serial = _mint(data, tmp_path / "a")
    assert_ok(run(data, "cert", "revoke", serial, "--reason", "superseded"))
    before = _state(data)
    assert_fails(
        run(data, "cert", "revoke", serial, "--reason", "keyCompromise"), 1, "already revoked"
    )
    assert _state(data) == before


@pytest.mark.parametrize(
    "args",
    [
        ("cert", "revoke"),
        ("cert", "revoke", "ab", "--spiffe-id", WORKLOAD),
        ("cert", "revoke", "ab", "--reason", "certificateHold"),
        ("cert", "revoke", "--spiffe-id", "not-a-spiffe-id"),
    ],
    ids=["nothing", "both", "bad reason", "bad id"],
)
def test_malformed_revoke_commands_are_usage_errors(data: Path, args: tuple[str, ...]) -> None:
    before = _state(data)
    result = run(data, *args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert _state(data) == before


def test_revoking_by_spiffe_id_revokes_each_valid_certificate(data: Path, tmp_path: Path) -> None:
    serials = {_mint(data, tmp_path / "a"), _mint(data, tmp_path / "b")}
    other = _mint(data, tmp_path / "c", WORKLOAD + "2")
    listed = json.loads(
        assert_ok(
            run(
                data,
                "cert",
                "revoke",
                "--spiffe-id",
                WORKLOAD,
                "--reason",
                "cessationOfOperation",
                "--output",
                "json",
            )
        )
    )
    assert {c["serial"] for c in listed} == serials
    assert other not in assert_ok(run(data, "cert", "list", "--revoked"))


def test_revoking_the_signing_intermediate_hands_over_to_a_new_one(
    data: Path, tmp_path: Path
) -> None:
    authorities = json.loads(assert_ok(run(data, "ca", "show", "--output", "json")))
    intermediate = next(a for a in authorities if a["kind"] == "intermediate")
    text = assert_ok(
        run(
            data,
            "ca",
            "revoke-intermediate",
            intermediate["serial"],
            "--reason",
            "cACompromise",
            "--yes",
        )
    )
    assert f"Revoked intermediate {intermediate['id']}" in text and "signs now" in text
    states = {
        a["id"]: a["state"]
        for a in json.loads(assert_ok(run(data, "ca", "show", "--output", "json")))
    }
    assert states[intermediate["id"]] == "revoked"
    assert sorted(states.values()) == ["active", "active", "revoked"]
    _mint(data, tmp_path / "after")  # issuance continues under the new intermediate
    assert_fails(
        run(
            data,
            "ca",
            "revoke-intermediate",
            intermediate["id"],
            "--reason",
            "cACompromise",
            "--yes",
        ),
        1,
        "already revoked",
    )


def test_revoke_intermediate_asks_first_and_a_no_changes_nothing(data: Path) -> None:
    authorities = json.loads(assert_ok(run(data, "ca", "show", "--output", "json")))
    intermediate = next(a for a in authorities if a["kind"] == "intermediate")
    before = _state(data)
    result = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(data),
            "ca",
            "revoke-intermediate",
            intermediate["id"],
            "--reason",
            "keyCompromise",
        ],
        input="n\n",
        env={"CITADEL_KEY_PASSPHRASE": "cli test passphrase", "CITADEL_DATA_DIR": None},
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert _state(data) == before
