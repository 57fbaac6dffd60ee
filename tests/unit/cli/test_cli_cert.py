from __future__ import annotations

import json
import re
import stat
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from citadel.identity.keys import load_private_key_pem, public_keys_equal
from citadel.identity.pem import load_certificates_pem
from citadel.identity.x509_svid import validate_x509_svid_leaf
from citadel.store.repository import Repository
from tests.peers import require_binary
from tests.unit.ca.ca_testkit import OPENSSL_HINT, assert_openssl_sees_x509_svid
from tests.unit.cli.cli_testkit import WORKLOAD, assert_fails, assert_ok, initialised, run

SERIAL = re.compile(r"Issued serial ([0-9a-f]+) ")


def _mint(data: Path, out: Path, spiffe_id: str = WORKLOAD, *extra: str) -> str:
    text = assert_ok(run(data, "cert", "mint", "--spiffe-id", spiffe_id, "--out", str(out), *extra))
    match = SERIAL.search(text)
    assert match, text
    return match.group(1)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return initialised(tmp_path / "data")


def test_mint_writes_a_private_key_and_a_chain_that_openssl_verifies(
    data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    serial = _mint(data, out, WORKLOAD, "--ttl", "2h")
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    chain = load_certificates_pem((out / "cert-chain.pem").read_bytes())
    roots = load_certificates_pem((out / "root-cert.pem").read_bytes())
    assert len(chain) == 2 and len(roots) == 1
    leaf = chain[0]
    assert format(leaf.serial_number, "x") == serial
    assert str(validate_x509_svid_leaf(leaf)) == WORKLOAD
    private = load_private_key_pem((out / "key.pem").read_bytes())
    assert public_keys_equal(private, leaf.public_key())  # type: ignore[arg-type]
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime.total_seconds() == 2 * 3600 + 120
    openssl = require_binary("openssl", hint=OPENSSL_HINT)
    verified = subprocess.run(
        [openssl, "verify", "-x509_strict", "-CAfile", str(out / "root-cert.pem"),
         "-untrusted", str(out / "cert-chain.pem"), str(out / "cert-chain.pem")],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert verified.returncode == 0 and verified.stdout.strip().endswith(": OK"), verified
    assert_openssl_sees_x509_svid(leaf, WORKLOAD)


def test_minted_certificate_is_recorded_and_audited(data: Path, tmp_path: Path) -> None:
    serial = _mint(data, tmp_path / "out")
    shown = json.loads(assert_ok(run(data, "cert", "show", serial, "--output", "json")))
    assert shown["spiffe_id"] == WORKLOAD
    assert shown["requester"].startswith("cli:uid=")
    assert shown["metadata"] == {"source": "citadel cert mint"}
    assert "1 events verified" in assert_ok(run(data, "audit", "verify"))


@pytest.mark.parametrize("key_type", ["ec-p384", "rsa-2048"])
def test_mint_with_other_key_types(data: Path, tmp_path: Path, key_type: str) -> None:
    _mint(data, tmp_path / "out", WORKLOAD, "--key-type", key_type)
    key = load_private_key_pem((tmp_path / "out" / "key.pem").read_bytes())
    assert key.key_size == (384 if key_type == "ec-p384" else 2048)


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["--spiffe-id", "http://cluster.local/x"], 2, "is not a SPIFFE ID"),
        (["--spiffe-id", "spiffe://Cluster.local/x"], 2, "lowercase"),
        (["--spiffe-id", "spiffe://cluster.local/a//b"], 2, "empty segments"),
        (["--spiffe-id", "spiffe://other.org/ns/a"], 2, "not in trust domain"),
        (["--spiffe-id", "spiffe://cluster.local"], 2, "needs a path"),
        (["--spiffe-id", WORKLOAD, "--ttl", "0"], 2, "not a duration"),
        (["--spiffe-id", WORKLOAD, "--ttl", "0s"], 2, "longer than zero"),
        (["--spiffe-id", WORKLOAD, "--ttl", "-1h"], 2, "not a duration"),
        (["--spiffe-id", WORKLOAD, "--ttl", "-1"], 2, "not a duration"),
        (["--spiffe-id", WORKLOAD, "--ttl", "91d"], 1, "TTL 91d exceeds the maximum of 90d"),
        (["--spiffe-id", WORKLOAD, "--ttl", "soon"], 2, "not a duration"),
        (["--spiffe-id", WORKLOAD, "--ttl", "99999999999d"], 2, "not a duration"),
        (["--spiffe-id", WORKLOAD, "--key-type", "ed25519"], 2, "'--key-type'"),
        ([], 2, "--spiffe-id"),
    ],
    ids=[
        "not-spiffe-scheme",
        "uppercase-trust-domain",
        "empty-segment",
        "foreign-trust-domain",
        "no-path",
        "ttl-bare-zero",
        "ttl-zero",
        "ttl-negative",
        "ttl-minus-one",
        "ttl-over-max",
        "ttl-garbage",
        "ttl-huge",
        "unknown-key-type",
        "missing-spiffe-id",
    ],
)
def test_bad_mint_input_fails_cleanly_and_writes_nothing(
    data: Path, tmp_path: Path, args: list[str], code: int, fragment: str
) -> None:
    out = tmp_path / "out"
    assert_fails(run(data, "cert", "mint", "--out", str(out), *args), code, fragment)
    assert not (out / "key.pem").exists()
    assert json.loads(assert_ok(run(data, "cert", "list", "--output", "json"))) == []


def test_mint_refuses_to_overwrite_existing_files(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "key.pem").write_text("precious")
    assert_fails(run(data, "cert", "mint", "--spiffe-id", WORKLOAD, "--out", str(out)), 1,
                 "refusing to overwrite key.pem")
    assert (out / "key.pem").read_text() == "precious"


def test_mint_with_the_wrong_key_passphrase_fails_cleanly(data: Path, tmp_path: Path) -> None:
    result = run(data, "cert", "mint", "--spiffe-id", WORKLOAD, "--out", str(tmp_path / "o"),
                 passphrase="wrong passphrase")
    assert_fails(result, 1, "wrong key passphrase")


def test_mint_without_any_passphrase_fails_cleanly(data: Path, tmp_path: Path) -> None:
    result = run(data, "cert", "mint", "--spiffe-id", WORKLOAD, "--out", str(tmp_path / "o"),
                 passphrase=None)
    assert_fails(result, 1, "no key passphrase is configured")


def test_mint_on_an_uninitialised_data_dir_says_to_run_init(tmp_path: Path) -> None:
    result = run(tmp_path / "absent", "cert", "mint", "--spiffe-id", WORKLOAD,
                 "--out", str(tmp_path / "o"))
    assert_fails(result, 1, "citadel init")


# --- list and show -----------------------------------------------------------------------


def test_list_filters_by_prefix_expiry_and_revocation(data: Path, tmp_path: Path) -> None:
    short = _mint(data, tmp_path / "a", "spiffe://cluster.local/ns/a/sa/one", "--ttl", "1h")
    long = _mint(data, tmp_path / "b", "spiffe://cluster.local/ns/a/sa/two", "--ttl", "48h")
    other = _mint(data, tmp_path / "c", "spiffe://cluster.local/ns/b/sa/one", "--ttl", "48h")

    def serials(*args: str) -> list[str]:
        rows = json.loads(assert_ok(run(data, "cert", "list", "--output", "json", *args)))
        return sorted(row["serial"] for row in rows)

    assert serials() == sorted([short, long, other])
    assert serials("--spiffe-id-prefix", "spiffe://cluster.local/ns/a/") == sorted([short, long])
    assert serials("--expiring-within", "2h") == [short]
    with Repository.open(f"sqlite:///{data / 'citadel.db'}") as repository:
        repository.revoke_certificate(long, "key compromise", datetime.now(UTC))
    assert serials("--revoked") == [long]
    assert serials("--not-revoked") == sorted([short, other])
    table = assert_ok(run(data, "cert", "list", "--revoked"))
    assert table.splitlines()[0].split() == [
        "SERIAL", "SPIFFE_ID", "NOT_AFTER", "EXPIRES_IN", "STATUS"
    ]
    assert table.splitlines()[1].split()[0] == long
    assert table.splitlines()[1].split()[-1] == "revoked"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--expiring-within", "tomorrow"], "not a duration"),
        (["--limit", "0"], "'--limit'"),
        (["--output", "yaml"], "'--output'"),
    ],
    ids=["garbage-duration", "zero-limit", "unknown-output"],
)
def test_bad_list_options_are_usage_errors(data: Path, args: list[str], fragment: str) -> None:
    assert_fails(run(data, "cert", "list", *args), 2, fragment)


def test_show_in_every_format(data: Path, tmp_path: Path) -> None:
    serial = _mint(data, tmp_path / "out")
    table = assert_ok(run(data, "cert", "show", serial))
    assert "Serial:" in table and WORKLOAD in table and "valid" in table
    pem = assert_ok(run(data, "cert", "show", serial.upper(), "--output", "pem"))
    assert load_certificates_pem(pem)[0] == load_certificates_pem(
        (tmp_path / "out" / "cert-chain.pem").read_bytes()
    )[0]


@pytest.mark.parametrize(
    ("serial", "code", "fragment"),
    [
        ("abcdef0123456789", 1, "no certificate with serial abcdef0123456789"),
        ("not-hex", 2, "not a hexadecimal certificate serial"),
        ("f" * 41, 2, "not a hexadecimal certificate serial"),
    ],
    ids=["unknown", "not-hex", "too-long"],
)
def test_show_of_a_bad_serial_fails_cleanly(
    data: Path, serial: str, code: int, fragment: str
) -> None:
    assert_fails(run(data, "cert", "show", serial), code, fragment)
