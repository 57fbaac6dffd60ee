"""A key manager that keeps keys in memory only (tests, ephemeral CAs)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from citadel.ca.errors import KeyManagerError, KeyNotFoundError
from citadel.ca.keymanager.base import Key, KeyManager, check_key_id
from citadel.ca.keymanager.software_key import SoftwareKey
from citadel.identity.keys import KeyType, PrivateKey, generate_private_key

__all__ = ["MemoryKeyManager"]


class MemoryKeyManager:
    """Keys live as long as this object; nothing touches the disk."""

    def __init__(self) -> None:
        self._keys: dict[str, SoftwareKey] = {}
        self._lock = threading.Lock()

    def generate_key(self, key_id: str, key_type: KeyType) -> Key:
        check_key_id(key_id)
        return self._store(key_id, generate_private_key(KeyType(key_type)))

    def import_key(self, key_id: str, private_key: PrivateKey) -> Key:
        check_key_id(key_id)
        return self._store(key_id, private_key)

    def _store(self, key_id: str, private_key: PrivateKey) -> Key:
        key = SoftwareKey(key_id, private_key)
        with self._lock:
            if key_id in self._keys:
                raise KeyManagerError(f"key {key_id} already exists")
            self._keys[key_id] = key
        return key

    def get_key(self, key_id: str) -> Key:
        with self._lock:
            key = self._keys.get(key_id)
        if key is None:
            raise KeyNotFoundError(f"key {key_id} does not exist")
        return key

    def list_keys(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)

    def delete_key(self, key_id: str) -> None:
        with self._lock:
            if self._keys.pop(key_id, None) is None:
                raise KeyNotFoundError(f"key {key_id} does not exist")


if TYPE_CHECKING:

    def _conforms(manager: MemoryKeyManager) -> KeyManager:
        return manager
