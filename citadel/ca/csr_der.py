"""A PKCS#10 CSR signed through a key manager handle, so the private key never leaves it.

cryptography's CSR builder needs the private key object, which a key manager does not hand
out; it only signs bytes. So the request is assembled here in DER (RFC 2986): the
``CertificationRequestInfo`` (version, subject, public key, the extension request), signed
with :meth:`Key.sign_bytes`, then wrapped with the signature algorithm. The result is parsed
back with cryptography and its signature checked before it is returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from citadel.ca.errors import SigningError
from citadel.ca.keymanager.base import Key
from citadel.identity.keys import KeyType

__all__ = ["build_signed_csr"]

_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
_SIGNATURE_ALGORITHMS: dict[KeyType, tuple[str, bool]] = {
    # key type -> (signature algorithm OID, parameters are NULL)
    KeyType.EC_P256: ("1.2.840.10045.4.3.2", False),  # ecdsa-with-SHA256
    KeyType.EC_P384: ("1.2.840.10045.4.3.3", False),  # ecdsa-with-SHA384
    KeyType.RSA_2048: ("1.2.840.113549.1.1.11", True),  # sha256WithRSAEncryption
    KeyType.RSA_3072: ("1.2.840.113549.1.1.11", True),
    KeyType.RSA_4096: ("1.2.840.113549.1.1.11", True),
}


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    encoded = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(encoded)]) + encoded


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _sequence(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _set_of(items: Sequence[bytes]) -> bytes:
    return _tlv(0x31, b"".join(sorted(items)))  # DER sorts SET OF by encoding


def _oid(dotted: str) -> bytes:
    parts = [int(p) for p in dotted.split(".")]
    body = bytearray([40 * parts[0] + parts[1]])
    for part in parts[2:]:
        chunk = [part & 0x7F]
        part >>= 7
        while part:
            chunk.append(0x80 | (part & 0x7F))
            part >>= 7
        body.extend(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _extension(extension: x509.Extension[x509.ExtensionType]) -> bytes:
    critical = _tlv(0x01, b"\xff") if extension.critical else b""
    return _sequence(
        _oid(extension.oid.dotted_string), critical, _tlv(0x04, extension.value.public_bytes())
    )


def _request_info(
    subject: x509.Name, spki: bytes, extensions: Sequence[x509.Extension[x509.ExtensionType]]
) -> bytes:
    extension_request = _sequence(
        _oid(_EXTENSION_REQUEST), _set_of([_sequence(*(_extension(e) for e in extensions))])
    )
    attributes = _tlv(0xA0, extension_request)  # [0] IMPLICIT SET OF Attribute (one element)
    return _sequence(_tlv(0x02, b"\x00"), subject.public_bytes(), spki, attributes)


def build_signed_csr(
    key: Key, subject: x509.Name, extensions: Sequence[x509.Extension[x509.ExtensionType]]
) -> x509.CertificateSigningRequest:
    """A CSR for ``key``'s public key, signed by ``key`` in its key manager.

    Raises:
        SigningError: the key type has no CSR signature algorithm here, or the result does
            not verify.
    """
    algorithm = _SIGNATURE_ALGORITHMS.get(key.key_type)
    if algorithm is None:
        raise SigningError(f"no CSR signature algorithm for key type {key.key_type.value}")
    oid, null_parameters = algorithm
    spki = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    info = _request_info(subject, spki, extensions)
    signature = key.sign_bytes(info)
    algorithm_id = _sequence(_oid(oid), _tlv(0x05, b"") if null_parameters else b"")
    der = _sequence(info, algorithm_id, _tlv(0x03, b"\x00" + signature))
    try:
        csr = x509.load_der_x509_csr(der)
    except ValueError as exc:
        raise SigningError(f"the CSR could not be assembled: {exc}") from exc
    if not csr.is_signature_valid:
        raise SigningError("the CSR signature made by the key manager does not verify")
    return csr
