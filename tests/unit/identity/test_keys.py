"""Key types Citadel accepts, and loading keys from PEM/DER."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from citadel.identity.errors import InvalidKeyError
from citadel.identity.keys import (
    MAX_KEY_BYTES,
    KeyType,
    PrivateKey,
    generate_private_key,
    key_type_of,
    load_private_key_der,
    load_private_key_pem,
    private_key_to_pkcs8_der,
    private_key_to_pkcs8_pem,
    public_key_fingerprint,
    public_keys_equal,
    signature_hash_for,
)

ALL_KEY_TYPES = [pytest.param(kt, id=kt.value) for kt in KeyType]


@pytest.fixture(scope="module")
def generated() -> dict[KeyType, PrivateKey]:
    """One key of each type, generated once (RSA 4096 is slow on a shared machine)."""
    return {kt: generate_private_key(kt) for kt in KeyType}


@pytest.fixture(scope="module")
def p256() -> PrivateKey:
    return generate_private_key(KeyType.EC_P256)


def _rsa_public_key(bits: int) -> rsa.RSAPublicKey:
    """An RSA public key whose modulus has exactly ``bits`` bits.

    OpenSSL rounds odd sizes when generating (asking for 2049 bits yields 2048), so the odd
    modulus is made up directly; classification only looks at the size.
    """
    modulus = (1 << (bits - 1)) | 0xF1  # top bit set, odd
    return rsa.RSAPublicNumbers(65537, modulus).public_key()


@pytest.mark.parametrize("key_type", ALL_KEY_TYPES)
def test_each_key_type_generates_a_key_that_classifies_as_itself(
    key_type: KeyType, generated: dict[KeyType, PrivateKey]
) -> None:
    key = generated[key_type]
    assert key_type_of(key) is key_type
    assert key_type_of(key.public_key()) is key_type
    assert key_type.is_rsa == isinstance(key, rsa.RSAPrivateKey)


def test_generate_private_key_accepts_the_key_type_string() -> None:
    key = generate_private_key("ec-p384")  # type: ignore[arg-type]
    assert key_type_of(key) is KeyType.EC_P384


def test_generate_private_key_rejects_an_unknown_key_type_string() -> None:
    with pytest.raises(ValueError, match="ec-p521"):
        generate_private_key("ec-p521")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("make_key", "fragment"),
    [
        pytest.param(
            lambda: rsa.generate_private_key(65537, 1024),  # noqa: S505 (weak on purpose)
            "RSA key of 1024 bits is too weak (minimum 2048)",
            id="rsa-1024-weak",
        ),
        pytest.param(
            lambda: _rsa_public_key(1536),
            "RSA key of 1536 bits is too weak (minimum 2048)",
            id="rsa-1536-weak",
        ),
        pytest.param(
            lambda: _rsa_public_key(2049),
            "RSA key size 2049 is not allowed (2048, 3072 or 4096)",
            id="rsa-2049-size",
        ),
        pytest.param(
            lambda: _rsa_public_key(8192),
            "RSA key size 8192 is not allowed (2048, 3072 or 4096)",
            id="rsa-8192-size",
        ),
        pytest.param(
            lambda: ec.generate_private_key(ec.SECP521R1()),
            "elliptic curve secp521r1 is not allowed (use P-256 or P-384)",
            id="ec-p521-unknown-curve",
        ),
        pytest.param(
            lambda: ec.generate_private_key(ec.SECP256K1()),
            "elliptic curve secp256k1 is not allowed (use P-256 or P-384)",
            id="ec-secp256k1-unknown-curve",
        ),
        pytest.param(
            ed25519.Ed25519PrivateKey.generate,
            "key algorithm Ed25519PrivateKey is not allowed",
            id="ed25519-algorithm",
        ),
        pytest.param(
            lambda: dsa.generate_private_key(2048),
            "key algorithm DSAPrivateKey is not allowed",
            id="dsa-algorithm",
        ),
        pytest.param(object, "key algorithm object is not allowed", id="not-a-key"),
    ],
)
def test_disallowed_key_is_rejected_naming_the_reason(
    make_key: Callable[[], object], fragment: str
) -> None:
    key = make_key()
    with pytest.raises(InvalidKeyError) as caught:
        key_type_of(key)
    assert caught.value.message == fragment
    assert caught.value.kind == "invalid_key"


@pytest.mark.parametrize(
    ("key_type", "digest"),
    [
        pytest.param(KeyType.EC_P256, hashes.SHA256, id="ec-p256-sha256"),
        pytest.param(KeyType.EC_P384, hashes.SHA384, id="ec-p384-sha384"),
        pytest.param(KeyType.RSA_2048, hashes.SHA256, id="rsa-2048-sha256"),
    ],
)
def test_signature_hash_matches_the_key_strength(
    key_type: KeyType, digest: type[hashes.HashAlgorithm], generated: dict[KeyType, PrivateKey]
) -> None:
    assert isinstance(signature_hash_for(generated[key_type]), digest)


# --- serialization round trips -------------------------------------------------------------


@pytest.mark.parametrize("key_type", ALL_KEY_TYPES)
def test_pkcs8_der_round_trip_keeps_the_key(
    key_type: KeyType, generated: dict[KeyType, PrivateKey]
) -> None:
    key = generated[key_type]
    der = private_key_to_pkcs8_der(key)
    assert public_keys_equal(load_private_key_der(der), key)


@pytest.mark.parametrize("key_type", ALL_KEY_TYPES)
def test_pkcs8_pem_round_trip_keeps_the_key(
    key_type: KeyType, generated: dict[KeyType, PrivateKey]
) -> None:
    key = generated[key_type]
    pem = private_key_to_pkcs8_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert public_keys_equal(load_private_key_pem(pem), key)
    assert public_keys_equal(load_private_key_pem(pem.decode("ascii")), key)


def test_encrypted_pkcs8_pem_round_trip_with_the_right_password(p256: PrivateKey) -> None:
    pem = private_key_to_pkcs8_pem(p256, password=b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert public_keys_equal(load_private_key_pem(pem, password=b"correct horse"), p256)


def test_encrypted_pem_with_the_wrong_password_says_so(p256: PrivateKey) -> None:
    pem = private_key_to_pkcs8_pem(p256, password=b"correct horse")
    with pytest.raises(InvalidKeyError) as caught:
        load_private_key_pem(pem, password=b"battery staple")
    assert caught.value.message == (
        "private key could not be decrypted (wrong passphrase or damaged key)"
    )


def test_encrypted_pem_without_a_password_asks_for_one(p256: PrivateKey) -> None:
    pem = private_key_to_pkcs8_pem(p256, password=b"correct horse")
    with pytest.raises(InvalidKeyError) as caught:
        load_private_key_pem(pem)
    assert caught.value.message == "private key is encrypted; a passphrase is required"


def test_plain_pem_with_a_password_says_it_is_not_encrypted(p256: PrivateKey) -> None:
    with pytest.raises(InvalidKeyError) as caught:
        load_private_key_pem(private_key_to_pkcs8_pem(p256), password=b"unneeded")
    assert caught.value.message == "private key is not encrypted, but a passphrase was given"


@pytest.mark.parametrize(
    "private_format",
    [
        pytest.param(serialization.PrivateFormat.TraditionalOpenSSL, id="sec1"),
        pytest.param(serialization.PrivateFormat.PKCS8, id="pkcs8"),
    ],
)
def test_ec_key_loads_from_sec1_and_pkcs8_pem(
    private_format: serialization.PrivateFormat, p256: PrivateKey
) -> None:
    pem = p256.private_bytes(
        serialization.Encoding.PEM, private_format, serialization.NoEncryption()
    )
    assert public_keys_equal(load_private_key_pem(pem), p256)


def test_rsa_key_loads_from_pkcs1_pem(generated: dict[KeyType, PrivateKey]) -> None:
    key = generated[KeyType.RSA_2048]
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert public_keys_equal(load_private_key_pem(pem), key)


def _pem(key: object) -> bytes:
    assert isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("make_pem", "fragment"),
    [
        pytest.param(
            lambda: _pem(rsa.generate_private_key(65537, 1024)),  # noqa: S505 (weak on purpose)
            "RSA key of 1024 bits is too weak",
            id="rsa-1024-pem",
        ),
        pytest.param(
            lambda: _pem(ec.generate_private_key(ec.SECP521R1())),
            "elliptic curve secp521r1 is not allowed",
            id="ec-p521-pem",
        ),
        pytest.param(
            lambda: _pem(ed25519.Ed25519PrivateKey.generate()),
            "key algorithm Ed25519PrivateKey is not allowed",
            id="ed25519-pem",
        ),
    ],
)
def test_loading_a_disallowed_key_is_rejected(make_pem: Callable[[], bytes], fragment: str) -> None:
    pem = make_pem()
    with pytest.raises(InvalidKeyError) as caught:
        load_private_key_pem(pem)
    assert fragment in caught.value.message


def test_loading_a_disallowed_key_from_der_is_rejected() -> None:
    der = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidKeyError, match="key algorithm Ed25519PrivateKey is not allowed"):
        load_private_key_der(der)


@pytest.fixture(scope="module")
def valid_pem(p256: PrivateKey) -> bytes:
    return private_key_to_pkcs8_pem(p256)


@pytest.mark.parametrize(
    ("mangle", "fragment"),
    [
        pytest.param(lambda pem: b"", "could not be loaded (malformed PEM)", id="empty"),
        pytest.param(
            lambda pem: b"not a key at all", "could not be loaded (malformed PEM)", id="garbage"
        ),
        pytest.param(
            lambda pem: pem[: len(pem) // 2], "could not be loaded (malformed PEM)", id="truncated"
        ),
        pytest.param(
            lambda pem: pem.replace(b"A", b"B", 5),
            "could not be loaded (malformed PEM)",
            id="corrupted-body",
        ),
        pytest.param(
            lambda pem: pem.replace(b"PRIVATE KEY", b"CERTIFICATE"),
            "could not be loaded (malformed PEM)",
            id="wrong-label",
        ),
        pytest.param(
            lambda pem: pem + b"\n" * MAX_KEY_BYTES,
            "private key PEM is too large",
            id="oversized",
        ),
        pytest.param(
            lambda pem: b"\xff\xfe" * 100, "could not be loaded (malformed PEM)", id="binary"
        ),
    ],
)
def test_malformed_pem_is_rejected(
    mangle: Callable[[bytes], bytes], fragment: str, valid_pem: bytes
) -> None:
    with pytest.raises(InvalidKeyError) as caught:
        load_private_key_pem(mangle(valid_pem))
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        pytest.param(b"", "could not be loaded", id="empty"),
        pytest.param(b"\x30\x03\x02\x01\x00", "could not be loaded", id="garbage"),
        pytest.param(b"\x30" * (MAX_KEY_BYTES + 1), "too large", id="oversized"),
    ],
)
def test_malformed_der_is_rejected(data: bytes, fragment: str) -> None:
    with pytest.raises(InvalidKeyError, match=fragment):
        load_private_key_der(data)


def test_truncated_der_is_rejected(p256: PrivateKey) -> None:
    der = private_key_to_pkcs8_der(p256)
    with pytest.raises(InvalidKeyError, match="private key DER could not be loaded"):
        load_private_key_der(der[:-5])


# --- fingerprints --------------------------------------------------------------------------


def test_fingerprint_is_sha256_of_the_public_key_info(p256: PrivateKey) -> None:
    spki = p256.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    expected = hashlib.sha256(spki).hexdigest()
    assert public_key_fingerprint(p256) == expected
    assert public_key_fingerprint(p256.public_key()) == expected


def test_public_keys_equal_tells_keys_apart(p256: PrivateKey) -> None:
    other = generate_private_key(KeyType.EC_P256)
    assert public_keys_equal(p256, p256.public_key())
    assert not public_keys_equal(p256, other)
    assert public_key_fingerprint(p256) != public_key_fingerprint(other)
