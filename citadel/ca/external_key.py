"""Authorities whose private key Citadel does not hold (a plug-in or upstream root).

Their records carry ``key_ref = "external:<sha256 of the certificate>"``. Loading one yields
an :class:`ExternalKey`: it has the certificate's public key, so an
:class:`~citadel.ca.authority.Authority` can describe the chain, but every signing call fails
with a clear error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cryptography import x509

from citadel.ca.errors import SigningError
from citadel.ca.keymanager.base import Key
from citadel.identity.keys import KeyType, PublicKey, key_type_of
from citadel.identity.pem import certificate_fingerprint

__all__ = ["EXTERNAL_KEY_PREFIX", "ExternalKey", "external_key_ref", "is_external_key_ref"]

EXTERNAL_KEY_PREFIX = "external:"


def external_key_ref(cert: x509.Certificate) -> str:
    return EXTERNAL_KEY_PREFIX + certificate_fingerprint(cert)


def is_external_key_ref(key_ref: str) -> bool:
    return key_ref.startswith(EXTERNAL_KEY_PREFIX)


class ExternalKey:
    """A verify-only stand-in for a key held by another CA."""

    __slots__ = ("_key_id", "_key_type", "_public_key")

    def __init__(self, cert: x509.Certificate) -> None:
        public_key = cert.public_key()
        self._key_type: KeyType = key_type_of(public_key)
        self._public_key: PublicKey = public_key  # type: ignore[assignment]
        self._key_id = external_key_ref(cert)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    def public_key(self) -> PublicKey:
        return self._public_key

    def _refuse(self) -> SigningError:
        return SigningError(
            f"authority {self._key_id[:24]}… is held by another CA; Citadel cannot sign with it"
        )

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        raise self._refuse()

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        raise self._refuse()

    def sign_bytes(self, data: bytes) -> bytes:
        raise self._refuse()

    def __repr__(self) -> str:
        return f"ExternalKey(key_id={self._key_id[:24]!r}…)"


if TYPE_CHECKING:

    def _conforms(key: ExternalKey) -> Key:
        return key
