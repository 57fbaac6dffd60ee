from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_templates import CaSpec, ca_builder
from tests.unit.cli.cli_testkit import assert_fails, assert_ok, initialised, run


def test_init_creates_the_ca_in_a_private_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    out = assert_ok(run(data, "init"))
    assert "Initialised the CA for trust domain cluster.local" in out
    assert "root" in out and "intermediate" in out
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert (data / "citadel.db").is_file()
    assert len(list((data / "keys").glob("*.pem"))) == 2


def test_second_init_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = initialised(tmp_path / "data")
    assert_fails(run(data, "init"), 1, "already initialised")


def test_init_with_a_key_type_and_lifetimes(tmp_path: Path) -> None:
    out = assert_ok(
        run(tmp_path / "d", "init", "--key-type", "ec-p384", "--root-ttl", "400d",
            "--intermediate-ttl", "30d")
    )
    assert "Initialised" in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--key-type", "dsa-1024"], "'--key-type'"),
        (["--root-ttl", "ten years"], "is not a duration"),
        (["--root-ttl", "0s"], "longer than zero"),
        (["--intermediate-ttl", "4000d"], "must not exceed root_ttl"),
        (["--root-key", "k.pem"], "--root-cert and --root-key must be given together"),
        (["--root-key-passphrase-file", "p"], "needs --root-key"),
    ],
    ids=[
        "unknown-key-type",
        "garbage-ttl",
        "zero-ttl",
        "intermediate-outlives-root",
        "key-without-cert",
        "passphrase-without-key",
    ],
)
def test_bad_init_options_are_refused(tmp_path: Path, args: list[str], fragment: str) -> None:
    result = run(tmp_path / "d", "init", *args)
    assert result.exit_code in (1, 2)
    assert_fails(result, result.exit_code, fragment)


# --- importing an operator's root --------------------------------------------------------


def _write_operator_root(tmp_path: Path, passphrase: bytes | None) -> tuple[Path, Path]:
    private = generate_private_key(KeyType.EC_P256)
    now = datetime.now(UTC)
    spec = CaSpec(
        trust_domain=TrustDomain("cluster.local"),
        common_name="Operator Root",
        public_key=private.public_key(),
        not_before=now - timedelta(days=1),
        not_after=now + timedelta(days=1000),
    )
    cert = ca_builder(spec, None).sign(private, hashes.SHA256())
    cert_path, key_path = tmp_path / "root.pem", tmp_path / "root-key.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    key_path.write_bytes(private_key_to_pkcs8_pem(private, password=passphrase))
    return cert_path, key_path


def test_init_imports_an_operator_root_with_an_encrypted_key(tmp_path: Path) -> None:
    cert, key = _write_operator_root(tmp_path, b"root pass")
    (tmp_path / "pass").write_text("root pass\n")
    data = tmp_path / "data"
    assert_ok(
        run(data, "init", "--root-cert", str(cert), "--root-key", str(key),
            "--root-key-passphrase-file", str(tmp_path / "pass"))
    )
    bundle = assert_ok(run(data, "bundle", "show"))
    assert bundle == cert.read_text()


@pytest.mark.parametrize(
    ("defect", "fragment"),
    [
        ("garbage-cert", "holds no certificate"),
        ("garbage-key", "root key"),
        ("wrong-passphrase", "wrong passphrase"),
        ("missing-passphrase", "passphrase is required"),
        ("missing-cert-file", "cannot be read"),
    ],
)
def test_bad_root_import_fails_cleanly_and_leaves_the_ca_uninitialised(
    tmp_path: Path, defect: str, fragment: str
) -> None:
    cert, key = _write_operator_root(tmp_path, b"root pass")
    (tmp_path / "pass").write_text("root pass\n")
    args = ["--root-cert", str(cert), "--root-key", str(key),
            "--root-key-passphrase-file", str(tmp_path / "pass")]
    if defect == "garbage-cert":
        cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n")
    elif defect == "garbage-key":
        key.write_bytes(b"\x00\x01garbage")
    elif defect == "wrong-passphrase":
        (tmp_path / "pass").write_text("nope\n")
    elif defect == "missing-passphrase":
        args = args[:4]
    elif defect == "missing-cert-file":
        cert.unlink()
    data = tmp_path / "data"
    assert_fails(run(data, "init", *args), 1, fragment)
    assert_fails(run(data, "ca", "show"), 1, "run 'citadel init' first")
