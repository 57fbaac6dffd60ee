"""Key managers: where the CA's private keys live, and the signing handles they give out."""

from __future__ import annotations

from citadel.ca.keymanager.base import Key, KeyManager, check_key_id, key_matches_certificate
from citadel.ca.keymanager.encrypted_file import EncryptedFileKeyManager
from citadel.ca.keymanager.memory import MemoryKeyManager
from citadel.ca.keymanager.software_key import SoftwareKey

__all__ = [
    "EncryptedFileKeyManager",
    "Key",
    "KeyManager",
    "MemoryKeyManager",
    "SoftwareKey",
    "check_key_id",
    "key_matches_certificate",
]
