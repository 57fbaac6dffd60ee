"""Opening a CA from its data directory: first start, restart, and damaged data."""

from __future__ import annotations

import sqlite3
import stat
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.bootstrap import RootImport
from citadel.ca.config import CaConfig
from citadel.ca.context import init_ca, open_ca
from citadel.ca.errors import (
    CaAlreadyInitialisedError,
    CaConfigError,
    CaNotReadyError,
    KeyManagerError,
    RootImportError,
)
from citadel.ca.issuer import SignParams
from citadel.identity.clock import ManualClock
from citadel.identity.keys import KeyType, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_templates import CaSpec, ca_builder
from tests.unit.ca.ca_testkit import openssl_verify

TD = TrustDomain("cluster.local")


@pytest.fixture
def config(tmp_path: Path) -> CaConfig:
    return CaConfig(data_dir=tmp_path / "data", key_passphrase=b"test passphrase")


def _issue_and_verify(config: CaConfig, clock: ManualClock, workdir: Path) -> str:
    with open_ca(config, clock) as ca:
        chain = ca.issuer.issue(
            generate_private_key().public_key(),
            SignParams(spiffe_id=TD.spiffe_id("/ns/a/sa/b"), requester="test"),
        )
        openssl_verify(chain, clock.now(), workdir)
        return chain.serial_hex


def test_first_start_creates_root_intermediate_and_a_private_data_dir(
    config: CaConfig, clock: ManualClock, tmp_path: Path
) -> None:
    with open_ca(config, clock, init_if_missing=True) as ca:
        authorities = ca.authorities
        assert authorities.root.not_after == clock.now() + timedelta(days=3650)
        assert authorities.signer.not_after == clock.now() + timedelta(days=365)
        assert authorities.signer.key.key_type is KeyType.EC_P256
        kinds = sorted((r.kind, r.state) for r in ca.repository.list_authorities())
        assert kinds == [("intermediate", "active"), ("root", "active")]
        assert len(ca.key_manager.list_keys()) == 2
    assert stat.S_IMODE(config.data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(config.keys_dir.stat().st_mode) == 0o700
    _issue_and_verify(config, clock, tmp_path / "openssl")


def test_restart_loads_the_same_authorities(config: CaConfig, clock: ManualClock) -> None:
    with open_ca(config, clock, init_if_missing=True) as first:
        fingerprints = (first.authorities.root.fingerprint, first.authorities.signer.fingerprint)
    with open_ca(config, clock, init_if_missing=True) as second:
        assert (
            second.authorities.root.fingerprint,
            second.authorities.signer.fingerprint,
        ) == fingerprints


def test_key_type_and_lifetimes_are_configurable(config: CaConfig, clock: ManualClock) -> None:
    custom = replace(
        config,
        key_type=KeyType.EC_P384,
        root_ttl=timedelta(days=400),
        intermediate_ttl=timedelta(days=30),
    )
    with init_ca(custom, clock) as ca:
        assert ca.authorities.root.key.key_type is KeyType.EC_P384
        assert ca.authorities.root.not_after == clock.now() + timedelta(days=400)
        assert ca.authorities.signer.not_after == clock.now() + timedelta(days=30)


def test_second_init_is_refused_and_changes_nothing(config: CaConfig, clock: ManualClock) -> None:
    with init_ca(config, clock) as ca:
        before = ca.repository.list_authorities()
        keys = ca.key_manager.list_keys()
    with pytest.raises(CaAlreadyInitialisedError, match="already initialised"):
        init_ca(config, clock)
    with open_ca(config, clock) as ca:
        assert ca.repository.list_authorities() == before
        assert ca.key_manager.list_keys() == keys


def test_missing_data_dir_is_ca_not_ready(config: CaConfig, clock: ManualClock) -> None:
    with pytest.raises(CaNotReadyError, match="does not exist; run 'citadel init'"):
        open_ca(config, clock)
    assert not config.data_dir.exists()


def test_data_dir_without_a_database_is_ca_not_ready(config: CaConfig, clock: ManualClock) -> None:
    config.data_dir.mkdir()
    with pytest.raises(CaNotReadyError, match="holds no CA database"):
        open_ca(config, clock)


def test_empty_database_is_not_initialised(config: CaConfig, clock: ManualClock) -> None:
    config.data_dir.mkdir()
    sqlite3.connect(config.data_dir / "citadel.db").close()
    with pytest.raises(CaNotReadyError, match="not initialised"):
        open_ca(config, clock)


def test_corrupted_database_is_ca_not_ready(config: CaConfig, clock: ManualClock) -> None:
    init_ca(config, clock).close()
    (config.data_dir / "citadel.db").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (config.data_dir / f"citadel.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(CaNotReadyError, match="cannot be opened"):
        open_ca(config, clock)


def test_missing_signing_key_is_ca_not_ready(config: CaConfig, clock: ManualClock) -> None:
    with init_ca(config, clock) as ca:
        key_id = ca.authorities.signer.key.key_id
    (config.keys_dir / f"{key_id}.pem").unlink()
    with pytest.raises(CaNotReadyError, match="missing from the key store"):
        open_ca(config, clock)


def test_swapped_key_files_are_detected(config: CaConfig, clock: ManualClock) -> None:
    with init_ca(config, clock) as ca:
        root_id = ca.authorities.root.key.key_id
        signer_id = ca.authorities.signer.key.key_id
    root_file = config.keys_dir / f"{root_id}.pem"
    signer_file = config.keys_dir / f"{signer_id}.pem"
    root_bytes = root_file.read_bytes()
    root_file.write_bytes(signer_file.read_bytes())
    signer_file.write_bytes(root_bytes)
    with pytest.raises(CaNotReadyError, match="does not match its certificate"):
        open_ca(config, clock)


def test_tampered_authority_certificate_is_detected(config: CaConfig, clock: ManualClock) -> None:
    with init_ca(config, clock) as ca:
        signer_id = ca.authorities.signer.key.key_id
        root_pem = ca.repository.get_authority(ca.authorities.root.key.key_id).certificate_pem
    with sqlite3.connect(config.data_dir / "citadel.db") as db:
        db.execute("UPDATE authorities SET certificate_pem = ? WHERE id = ?", (root_pem, signer_id))
    with pytest.raises(CaNotReadyError, match="does not match its fingerprint"):
        open_ca(config, clock)


def test_wrong_passphrase_is_a_key_manager_error(config: CaConfig, clock: ManualClock) -> None:
    init_ca(config, clock).close()
    with pytest.raises(KeyManagerError, match="wrong key passphrase"):
        open_ca(replace(config, key_passphrase=b"not the passphrase"), clock)


def test_opening_with_another_trust_domain_is_refused(
    config: CaConfig, clock: ManualClock
) -> None:
    init_ca(config, clock).close()
    with pytest.raises(CaNotReadyError, match=r"initialised for trust domain cluster\.local"):
        open_ca(replace(config, trust_domain=TrustDomain("other.org")), clock)


def test_expired_intermediate_is_ca_not_ready(config: CaConfig, clock: ManualClock) -> None:
    init_ca(config, clock).close()
    clock.advance(timedelta(days=366))
    with pytest.raises(CaNotReadyError, match="expired"):
        open_ca(config, clock)


def test_malformed_database_url_is_a_config_error(config: CaConfig, clock: ManualClock) -> None:
    with pytest.raises(CaConfigError, match="database URL"):
        init_ca(replace(config, db_url="nonsense://"), clock)


# --- importing an operator's root ------------------------------------------------------------


def _operator_root(clock: ManualClock, passphrase: bytes | None = None) -> RootImport:
    private = generate_private_key(KeyType.EC_P256)
    spec = CaSpec(
        trust_domain=TD,
        common_name="Operator Root",
        public_key=private.public_key(),
        not_before=clock.now() - timedelta(days=1),
        not_after=clock.now() + timedelta(days=1000),
        path_length=1,
    )
    cert = ca_builder(spec, None).sign(private, hashes.SHA256())
    return RootImport(
        certificate_pem=cert.public_bytes(Encoding.PEM),
        key_pem=private_key_to_pkcs8_pem(private, password=passphrase),
        key_passphrase=passphrase,
    )


@pytest.mark.parametrize("passphrase", [None, b"root secret"], ids=["plain-key", "encrypted-key"])
def test_imported_root_signs_the_intermediate_and_is_the_bundle(
    config: CaConfig, clock: ManualClock, tmp_path: Path, passphrase: bytes | None
) -> None:
    root = _operator_root(clock, passphrase)
    with init_ca(config, clock, root_import=root) as ca:
        root_cert = ca.authorities.root.cert
        assert root_cert.public_bytes(Encoding.PEM) == root.certificate_pem
        ca.authorities.signer.cert.verify_directly_issued_by(root_cert)
        assert ca.issuer.trust_bundle().x509_authorities == (root_cert,)
    _issue_and_verify(config, clock, tmp_path / "openssl")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"certificate_pem": b"garbage"}, "holds no certificate"),
        ({"key_pem": b"garbage"}, "root key"),
        ({"key_passphrase": b"wrong"}, "root key"),
        ({"certificate_pem": None}, "one certificate"),
    ],
    ids=["garbage-cert", "garbage-key", "wrong-key-passphrase", "two-certificates"],
)
def test_bad_root_import_is_refused_and_leaves_no_keys(
    config: CaConfig, clock: ManualClock, change: dict[str, bytes | None], message: str
) -> None:
    root = _operator_root(clock, b"root secret")
    if change.get("certificate_pem", b"") is None:
        change = {"certificate_pem": root.certificate_pem * 2}
    bad = replace(root, **change)  # type: ignore[arg-type]
    with pytest.raises(RootImportError, match=message):
        init_ca(config, clock, root_import=bad)
    assert list(config.keys_dir.iterdir()) == []
    with pytest.raises(CaNotReadyError, match="not initialised"):
        open_ca(config, clock)


def test_concurrent_first_starts_share_one_set_of_authorities(tmp_path: Path) -> None:
    config = CaConfig(data_dir=tmp_path / "data")  # generated passphrase: raced for as well
    clock = ManualClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
    results: list[object] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def first_start() -> None:
        start.wait()
        try:
            with open_ca(config, clock, init_if_missing=True) as ca:
                outcome: object = ca.authorities.root.fingerprint
        except Exception as exc:
            outcome = exc
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=first_start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    with open_ca(config, clock) as ca:
        assert len(ca.repository.list_authorities()) == 2
