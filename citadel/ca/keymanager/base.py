"""The key manager and key interfaces the CA signs through.

Private keys never leave a key manager: callers get a :class:`Key` handle that can sign
certificates, CRLs and bytes, and report its public key, but never hands out key material.
"""

from __future__ import annotations

import re
from typing import Protocol, runtime_checkable

from cryptography import x509

from citadel.identity.keys import KeyType, PrivateKey, PublicKey, public_keys_equal

__all__ = ["Key", "KeyManager", "check_key_id", "key_matches_certificate"]

_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def check_key_id(key_id: str) -> str:
    """Return ``key_id`` if it is a safe key name (also a file name), else raise ValueError."""
    if not isinstance(key_id, str):
        raise TypeError("key id must be a str")
    if not _KEY_ID.match(key_id):
        raise ValueError(
            "key id must be 1-128 characters of letters, digits, '.', '_' or '-' and start "
            "with a letter or digit"
        )
    return key_id


@runtime_checkable
class Key(Protocol):
    """A signing key held by a key manager."""

    @property
    def key_id(self) -> str: ...

    @property
    def key_type(self) -> KeyType: ...

    def public_key(self) -> PublicKey: ...

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        """Sign with the digest that suits this key (SHA-384 for P-384, else SHA-256).

        Raises:
            SigningError: the builder is incomplete or signing failed.
        """
        ...

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList: ...

    def sign_bytes(self, data: bytes) -> bytes:
        """A raw signature: DER ECDSA for EC keys, PKCS#1 v1.5 for RSA keys (JWT signing)."""
        ...


@runtime_checkable
class KeyManager(Protocol):
    """Creates, stores and hands out signing keys by id."""

    def generate_key(self, key_id: str, key_type: KeyType) -> Key:
        """Create and store a new key.

        Raises:
            KeyManagerError: a key with this id already exists or cannot be stored.
        """
        ...

    def import_key(self, key_id: str, private_key: PrivateKey) -> Key:
        """Store an existing private key (an operator's root key) under ``key_id``.

        Raises:
            KeyManagerError: a key with this id already exists or cannot be stored.
        """
        ...

    def get_key(self, key_id: str) -> Key:
        """Raises:
        KeyNotFoundError: no such key.
        KeyManagerError: the key exists but cannot be loaded (wrong passphrase, damaged).
        """
        ...

    def list_keys(self) -> list[str]:
        """The ids of every stored key, sorted."""
        ...

    def delete_key(self, key_id: str) -> None:
        """Raises:
        KeyNotFoundError: no such key.
        """
        ...


def key_matches_certificate(key: Key, cert: x509.Certificate) -> bool:
    """True when ``cert`` certifies the public half of ``key``."""
    cert_key = cert.public_key()
    try:
        return public_keys_equal(key.public_key(), cert_key)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
