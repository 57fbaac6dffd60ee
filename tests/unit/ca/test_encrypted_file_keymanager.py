from __future__ import annotations

import stat
from pathlib import Path

import pytest

from citadel.ca.errors import KeyManagerError, KeyNotFoundError
from citadel.ca.keymanager import EncryptedFileKeyManager
from citadel.ca.keymanager.base import KeyManager
from citadel.identity.keys import KeyType, load_private_key_pem, public_keys_equal
from tests.unit.ca.keymanager_contract import KeyManagerContract

PASSPHRASE = b"correct horse battery staple"


class TestEncryptedFileKeyManager(KeyManagerContract):
    @pytest.fixture
    def manager(self, tmp_path: Path) -> KeyManager:
        return EncryptedFileKeyManager(tmp_path / "keys", PASSPHRASE)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_directory_is_created_0700_and_key_files_0600(tmp_path: Path) -> None:
    manager = EncryptedFileKeyManager(tmp_path / "keys", PASSPHRASE)
    manager.generate_key("root", KeyType.EC_P256)
    assert _mode(tmp_path / "keys") == 0o700
    assert _mode(tmp_path / "keys" / "root.pem") == 0o600


def test_an_existing_open_key_directory_is_tightened_to_0700(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    EncryptedFileKeyManager(directory, PASSPHRASE)
    assert _mode(directory) == 0o700


def test_key_file_is_passphrase_encrypted_pkcs8(tmp_path: Path) -> None:
    manager = EncryptedFileKeyManager(tmp_path, PASSPHRASE)
    key = manager.generate_key("root", KeyType.EC_P256)
    data = (tmp_path / "root.pem").read_bytes()
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert public_keys_equal(load_private_key_pem(data, password=PASSPHRASE), key.public_key())


def test_writing_leaves_no_temporary_files(tmp_path: Path) -> None:
    manager = EncryptedFileKeyManager(tmp_path, PASSPHRASE)
    manager.generate_key("a", KeyType.EC_P256)
    manager.generate_key("b", KeyType.EC_P256)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pem", "b.pem"]


def test_keys_survive_a_new_manager_on_the_same_directory(tmp_path: Path) -> None:
    created = EncryptedFileKeyManager(tmp_path, PASSPHRASE).generate_key("k", KeyType.EC_P384)
    reopened = EncryptedFileKeyManager(tmp_path, PASSPHRASE).get_key("k")
    assert reopened.key_type is KeyType.EC_P384
    assert public_keys_equal(created.public_key(), reopened.public_key())


def test_wrong_passphrase_is_a_clear_key_manager_error(tmp_path: Path) -> None:
    EncryptedFileKeyManager(tmp_path, PASSPHRASE).generate_key("k", KeyType.EC_P256)
    with pytest.raises(KeyManagerError, match="wrong key passphrase") as caught:
        EncryptedFileKeyManager(tmp_path, b"wrong").get_key("k")
    assert not isinstance(caught.value, KeyNotFoundError)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage",
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
    ],
    ids=["empty", "garbage", "truncated-pem"],
)
def test_damaged_key_file_is_a_key_manager_error(tmp_path: Path, content: bytes) -> None:
    EncryptedFileKeyManager(tmp_path, PASSPHRASE).generate_key("k", KeyType.EC_P256)
    (tmp_path / "k.pem").write_bytes(content)
    with pytest.raises(KeyManagerError, match="damaged key file"):
        EncryptedFileKeyManager(tmp_path, PASSPHRASE).get_key("k")


def test_oversized_key_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.pem"
    path.write_bytes(b"A" * (1024 * 1024))
    path.chmod(0o600)
    with pytest.raises(KeyManagerError, match="too large"):
        EncryptedFileKeyManager(tmp_path, PASSPHRASE).get_key("big")


def test_group_readable_key_file_is_refused(tmp_path: Path) -> None:
    EncryptedFileKeyManager(tmp_path, PASSPHRASE).generate_key("k", KeyType.EC_P256)
    (tmp_path / "k.pem").chmod(0o644)
    with pytest.raises(KeyManagerError, match="chmod 600"):
        EncryptedFileKeyManager(tmp_path, PASSPHRASE).get_key("k")


def test_a_key_file_is_never_overwritten(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_bytes(b"operator's file")
    with pytest.raises(KeyManagerError, match="already exists"):
        EncryptedFileKeyManager(tmp_path, PASSPHRASE).generate_key("k", KeyType.EC_P256)
    assert (tmp_path / "k.pem").read_bytes() == b"operator's file"


def test_empty_passphrase_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyManagerError, match="empty"):
        EncryptedFileKeyManager(tmp_path, b"")


def test_key_directory_that_is_a_file_is_refused(tmp_path: Path) -> None:
    blocker = tmp_path / "keys"
    blocker.write_text("not a directory")
    with pytest.raises(KeyManagerError, match="unusable"):
        EncryptedFileKeyManager(blocker, PASSPHRASE)


def test_list_ignores_foreign_and_temporary_files(tmp_path: Path) -> None:
    manager = EncryptedFileKeyManager(tmp_path, PASSPHRASE)
    manager.generate_key("real", KeyType.EC_P256)
    (tmp_path / ".real.pem.abcd.tmp").write_text("x")
    (tmp_path / "notes.txt").write_text("x")
    assert manager.list_keys() == ["real"]
