"""Key types Citadel accepts, key generation and PKCS#8 serialization."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from citadel.identity.errors import InvalidKeyError

__all__ = [
    "KeyType",
    "PrivateKey",
    "PublicKey",
    "generate_private_key",
    "key_type_of",
    "load_private_key_der",
    "load_private_key_pem",
    "private_key_to_pkcs8_der",
    "private_key_to_pkcs8_pem",
    "public_key_fingerprint",
    "public_keys_equal",
    "signature_hash_for",
]

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey

MAX_KEY_BYTES = 16 * 1024


class KeyType(StrEnum):
    """The key algorithms Citadel issues for and accepts in CSRs."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @property
    def is_rsa(self) -> bool:
        return self.value.startswith("rsa-")


_CURVES: dict[KeyType, ec.EllipticCurve] = {
    KeyType.EC_P256: ec.SECP256R1(),
    KeyType.EC_P384: ec.SECP384R1(),
}
_RSA_SIZES: dict[int, KeyType] = {
    2048: KeyType.RSA_2048,
    3072: KeyType.RSA_3072,
    4096: KeyType.RSA_4096,
}


def generate_private_key(key_type: KeyType = KeyType.EC_P256) -> PrivateKey:
    """Generate a fresh private key of ``key_type``."""
    key_type = KeyType(key_type)
    if key_type.is_rsa:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.value[4:]))
    return ec.generate_private_key(_CURVES[key_type])


def key_type_of(key: PublicKey | PrivateKey | object) -> KeyType:
    """Classify a key, rejecting weak or unknown ones.

    Raises:
        InvalidKeyError: RSA below 2048 bits, an RSA size we do not issue, an unknown curve,
            or a key algorithm we do not accept (DSA, Ed25519, ...).
    """
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        name = key.curve.name
        for key_type, curve in _CURVES.items():
            if curve.name == name:
                return key_type
        raise InvalidKeyError(f"elliptic curve {name} is not allowed (use P-256 or P-384)")
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        size = key.key_size
        if size < 2048:
            raise InvalidKeyError(f"RSA key of {size} bits is too weak (minimum 2048)")
        if size not in _RSA_SIZES:
            raise InvalidKeyError(f"RSA key size {size} is not allowed (2048, 3072 or 4096)")
        return _RSA_SIZES[size]
    raise InvalidKeyError(f"key algorithm {type(key).__name__} is not allowed")


def signature_hash_for(key: PublicKey | PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    """The digest Citadel signs with for a given signing key."""
    if key_type_of(key) is KeyType.EC_P384:
        return hashes.SHA384()
    return hashes.SHA256()


def private_key_to_pkcs8_der(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def private_key_to_pkcs8_pem(key: PrivateKey, *, password: bytes | None = None) -> bytes:
    """PKCS#8 PEM, encrypted with the best available scheme when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _checked(key: object) -> PrivateKey:
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InvalidKeyError(f"key algorithm {type(key).__name__} is not allowed")
    key_type_of(key)
    return key


def load_private_key_pem(data: bytes | str, *, password: bytes | None = None) -> PrivateKey:
    """Load a PEM private key (PKCS#8, SEC1 or PKCS#1).

    Raises:
        InvalidKeyError: malformed, oversized, wrongly encrypted, or a disallowed key.
    """
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else data
    if len(raw) > MAX_KEY_BYTES:
        raise InvalidKeyError("private key PEM is too large")
    try:
        key = serialization.load_pem_private_key(raw, password=password)
    except TypeError as exc:
        # cryptography raises TypeError both ways round; say which one happened.
        if password is None:
            raise InvalidKeyError("private key is encrypted; a passphrase is required") from exc
        raise InvalidKeyError("private key is not encrypted, but a passphrase was given") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        if password is not None and b"ENCRYPTED" in raw:
            raise InvalidKeyError(
                "private key could not be decrypted (wrong passphrase or damaged key)"
            ) from exc
        raise InvalidKeyError("private key could not be loaded (malformed PEM)") from exc
    return _checked(key)


def load_private_key_der(data: bytes) -> PrivateKey:
    """Load an unencrypted PKCS#8 DER private key."""
    if len(data) > MAX_KEY_BYTES:
        raise InvalidKeyError("private key DER is too large")
    try:
        key = serialization.load_der_private_key(data, password=None)
    except (TypeError, ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidKeyError("private key DER could not be loaded") from exc
    return _checked(key)


def _spki_der(key: PublicKey | PrivateKey) -> bytes:
    public = (
        key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) else key
    )
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def public_key_fingerprint(key: PublicKey | PrivateKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo DER, lowercase hex: safe to log."""
    return hashlib.sha256(_spki_der(key)).hexdigest()


def public_keys_equal(a: PublicKey | PrivateKey, b: PublicKey | PrivateKey) -> bool:
    """True when two keys (private or public) share the same public key."""
    return _spki_der(a) == _spki_der(b)
