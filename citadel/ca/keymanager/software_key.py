"""A :class:`~citadel.ca.keymanager.base.Key` backed by an in-process private key.

The private key is only reachable from the signing closures built in :func:`_operations`;
the handle has no attribute that holds it or that returns its bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding

from citadel.ca.errors import SigningError
from citadel.ca.keymanager.base import Key
from citadel.identity.keys import (
    KeyType,
    PrivateKey,
    PublicKey,
    key_type_of,
    public_key_fingerprint,
    signature_hash_for,
)

__all__ = ["SoftwareKey"]


@dataclass(frozen=True, slots=True)
class _Operations:
    sign_certificate: Callable[[x509.CertificateBuilder], x509.Certificate]
    sign_crl: Callable[[x509.CertificateRevocationListBuilder], x509.CertificateRevocationList]
    sign_bytes: Callable[[bytes], bytes]


def _operations(private_key: PrivateKey) -> _Operations:
    algorithm = signature_hash_for(private_key)

    def sign_certificate(builder: x509.CertificateBuilder) -> x509.Certificate:
        return builder.sign(private_key, algorithm)

    def sign_crl(
        builder: x509.CertificateRevocationListBuilder,
    ) -> x509.CertificateRevocationList:
        return builder.sign(private_key, algorithm)

    def sign_bytes(data: bytes) -> bytes:
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            return private_key.sign(data, ec.ECDSA(algorithm))
        return private_key.sign(data, padding.PKCS1v15(), algorithm)

    return _Operations(sign_certificate, sign_crl, sign_bytes)


class SoftwareKey:
    """A signing handle over a private key held in this process."""

    __slots__ = ("_fingerprint", "_key_id", "_key_type", "_ops", "_public_key")

    def __init__(self, key_id: str, private_key: PrivateKey) -> None:
        self._key_id = key_id
        self._key_type: KeyType = key_type_of(private_key)
        self._public_key: PublicKey = private_key.public_key()
        self._fingerprint = public_key_fingerprint(self._public_key)
        self._ops = _operations(private_key)

    @property
    def key_id(self) -> str:
        return self._key_id

    @property
    def key_type(self) -> KeyType:
        return self._key_type

    @property
    def public_key_fingerprint(self) -> str:
        """SHA-256 of the public key (SPKI DER), safe to log."""
        return self._fingerprint

    def public_key(self) -> PublicKey:
        return self._public_key

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        if not isinstance(builder, x509.CertificateBuilder):
            raise TypeError("builder must be an x509.CertificateBuilder")
        try:
            return self._ops.sign_certificate(builder)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningError(f"key {self._key_id} could not sign the certificate: {exc}") from exc

    def sign_crl(
        self, builder: x509.CertificateRevocationListBuilder
    ) -> x509.CertificateRevocationList:
        if not isinstance(builder, x509.CertificateRevocationListBuilder):
            raise TypeError("builder must be an x509.CertificateRevocationListBuilder")
        try:
            return self._ops.sign_crl(builder)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise SigningError(f"key {self._key_id} could not sign the CRL: {exc}") from exc

    def sign_bytes(self, data: bytes) -> bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("data must be bytes")
        return self._ops.sign_bytes(bytes(data))

    def __repr__(self) -> str:
        return (
            f"SoftwareKey(key_id={self._key_id!r}, key_type={self._key_type.value!r}, "
            f"public_key_sha256={self._fingerprint[:16]}…)"
        )

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("signing keys cannot be pickled")


if TYPE_CHECKING:

    def _conforms(key: SoftwareKey) -> Key:
        return key
