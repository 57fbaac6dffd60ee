"""A key manager that keeps each key in its own passphrase-encrypted PKCS#8 PEM file.

Layout: ``<directory>/<key_id>.pem``, the directory mode 0700 and every file mode 0600.
Files are written atomically (see :mod:`citadel.ca.private_files`) and never overwritten.
Decrypted keys are cached in memory, behind signing handles, for the life of the manager.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from citadel.ca.errors import KeyManagerError, KeyNotFoundError
from citadel.ca.keymanager.base import Key, KeyManager, check_key_id
from citadel.ca.keymanager.software_key import SoftwareKey
from citadel.ca.private_files import ensure_private_dir, is_private_file, write_private_file
from citadel.identity.errors import InvalidKeyError
from citadel.identity.keys import (
    MAX_KEY_BYTES,
    KeyType,
    PrivateKey,
    generate_private_key,
    load_private_key_pem,
    private_key_to_pkcs8_pem,
)

__all__ = ["EncryptedFileKeyManager"]

_log = logging.getLogger(__name__)
_SUFFIX = ".pem"


class EncryptedFileKeyManager:
    """Keys encrypted at rest with one passphrase, one file per key."""

    def __init__(self, directory: Path, passphrase: bytes) -> None:
        """Open (creating if needed, mode 0700) the key directory.

        Raises:
            KeyManagerError: the passphrase is empty or the directory is unusable.
        """
        if not isinstance(passphrase, bytes):
            raise TypeError("passphrase must be bytes")
        if not passphrase:
            raise KeyManagerError("key passphrase is empty")
        try:
            self._directory = ensure_private_dir(Path(directory))
        except OSError as exc:
            raise KeyManagerError(
                f"key directory {directory} is unusable: {exc.strerror or exc}"
            ) from exc
        self._passphrase = passphrase
        self._cache: dict[str, SoftwareKey] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EncryptedFileKeyManager(directory={str(self._directory)!r})"

    @property
    def directory(self) -> Path:
        return self._directory

    def _path(self, key_id: str) -> Path:
        check_key_id(key_id)
        return self._directory / f"{key_id}{_SUFFIX}"

    def generate_key(self, key_id: str, key_type: KeyType) -> Key:
        path = self._path(key_id)
        if path.exists():
            raise KeyManagerError(f"key {key_id} already exists")
        return self._store(key_id, path, generate_private_key(KeyType(key_type)))

    def import_key(self, key_id: str, private_key: PrivateKey) -> Key:
        path = self._path(key_id)
        if path.exists():
            raise KeyManagerError(f"key {key_id} already exists")
        return self._store(key_id, path, private_key)

    def _store(self, key_id: str, path: Path, private_key: PrivateKey) -> Key:
        key = SoftwareKey(key_id, private_key)
        pem = private_key_to_pkcs8_pem(private_key, password=self._passphrase)
        with self._lock:
            try:
                write_private_file(path, pem)
            except FileExistsError as exc:
                raise KeyManagerError(f"key {key_id} already exists") from exc
            except OSError as exc:
                raise KeyManagerError(
                    f"key {key_id} could not be written: {exc.strerror or exc}"
                ) from exc
            self._cache[key_id] = key
        _log.info("stored key %s (%s) in %s", key_id, key.key_type.value, self._directory)
        return key

    def get_key(self, key_id: str) -> Key:
        path = self._path(key_id)
        with self._lock:
            cached = self._cache.get(key_id)
            if cached is not None:
                return cached
            key = SoftwareKey(key_id, self._load(key_id, path))
            self._cache[key_id] = key
            return key

    def _load(self, key_id: str, path: Path) -> PrivateKey:
        try:
            if not is_private_file(path):
                raise KeyManagerError(
                    f"key file {path} is readable by group or others; run 'chmod 600 {path}'"
                )
            with path.open("rb") as handle:
                data = handle.read(MAX_KEY_BYTES + 1)
        except FileNotFoundError as exc:
            raise KeyNotFoundError(f"key {key_id} does not exist in {self._directory}") from exc
        except OSError as exc:
            raise KeyManagerError(f"key {key_id} could not be read: {exc.strerror or exc}") from exc
        if len(data) > MAX_KEY_BYTES:
            raise KeyManagerError(f"key file {path} is too large to be a key")
        try:
            return load_private_key_pem(data, password=self._passphrase)
        except InvalidKeyError as exc:
            raise KeyManagerError(
                f"key {key_id} could not be decrypted: wrong key passphrase or damaged key file"
            ) from exc

    def list_keys(self) -> list[str]:
        try:
            names = os.listdir(self._directory)
        except OSError as exc:
            raise KeyManagerError(f"key directory could not be listed: {exc.strerror}") from exc
        ids = []
        for name in names:
            if not name.endswith(_SUFFIX) or name.startswith("."):
                continue
            key_id = name[: -len(_SUFFIX)]
            with contextlib.suppress(ValueError):
                ids.append(check_key_id(key_id))
        return sorted(ids)

    def delete_key(self, key_id: str) -> None:
        path = self._path(key_id)
        with self._lock:
            try:
                path.unlink()
            except FileNotFoundError as exc:
                raise KeyNotFoundError(f"key {key_id} does not exist") from exc
            except OSError as exc:
                raise KeyManagerError(
                    f"key {key_id} could not be deleted: {exc.strerror or exc}"
                ) from exc
            self._cache.pop(key_id, None)
        _log.info("deleted key %s", key_id)


if TYPE_CHECKING:

    def _conforms(manager: EncryptedFileKeyManager) -> KeyManager:
        return manager
