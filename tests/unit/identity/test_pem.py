"""Certificate PEM/DER helpers and the log-safe names of a certificate."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization

from citadel.identity.errors import InvalidCertificateError
from citadel.identity.pem import (
    MAX_PEM_BYTES,
    certificate_fingerprint,
    certificates_to_pem,
    load_certificate_der,
    load_certificates_pem,
    serial_hex,
)
from tests.fixtures.der import split_signed
from tests.fixtures.pki import Pki


def test_pem_round_trip_keeps_every_certificate_in_order(pki: Pki) -> None:
    leaf, _ = pki.issue_leaf()
    chain = [leaf, pki.intermediate, pki.root]
    pem = certificates_to_pem(chain)
    assert load_certificates_pem(pem) == chain
    assert load_certificates_pem(pem.encode()) == chain
    assert load_certificates_pem(pem.replace("\n", "\r\n")) == chain


def test_text_around_pem_blocks_is_ignored(pki: Pki) -> None:
    pem = "subject=root\n" + certificates_to_pem([pki.root]) + "# trailing comment\n"
    assert load_certificates_pem(pem) == [pki.root]


def test_der_round_trip(pki: Pki) -> None:
    assert load_certificate_der(pki.root.public_bytes(serialization.Encoding.DER)) == pki.root


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param("", "certificate PEM holds no certificate", id="empty"),
        pytest.param("hello", "certificate PEM holds no certificate", id="garbage"),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "certificate PEM: certificate #1 is malformed",
            id="malformed-block",
        ),
        pytest.param(
            "-----BEGIN CERTIFICATE-----\nMIIB\n",
            "certificate PEM holds no certificate",
            id="truncated-without-end-line",
        ),
        pytest.param(
            "a" * (MAX_PEM_BYTES + 1),
            f"certificate PEM is larger than {MAX_PEM_BYTES} bytes",
            id="oversized",
        ),
    ],
)
def test_malformed_certificate_pem_is_rejected(data: str, message: str) -> None:
    with pytest.raises(InvalidCertificateError) as caught:
        load_certificates_pem(data)
    assert caught.value.message == message


def test_second_malformed_block_is_named_by_position(pki: Pki) -> None:
    pem = certificates_to_pem([pki.root]) + (
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    )
    with pytest.raises(InvalidCertificateError, match=r"certificate #2 is malformed"):
        load_certificates_pem(pem, what="root bundle")


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x30\x03\x02\x01\x00", id="garbage"),
    ],
)
def test_malformed_certificate_der_is_rejected(data: bytes) -> None:
    with pytest.raises(InvalidCertificateError, match="certificate DER is malformed"):
        load_certificate_der(data)


def test_certificate_with_unknown_version_is_rejected_as_malformed_regression(pki: Pki) -> None:
    """cryptography raises InvalidVersion (not a ValueError) for this; it must not escape."""
    der = pki.root.public_bytes(serialization.Encoding.DER)
    tbs = split_signed(der).tbs
    # TBSCertificate starts with [0] EXPLICIT INTEGER version: a0 03 02 01 02 (v3)
    assert b"\xa0\x03\x02\x01\x02" in tbs[:10]
    bad = der.replace(b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x07", 1)
    with pytest.raises(InvalidCertificateError, match="certificate DER is malformed"):
        load_certificate_der(bad)
    pem = "-----BEGIN CERTIFICATE-----\n" + _b64(bad) + "\n-----END CERTIFICATE-----\n"
    with pytest.raises(InvalidCertificateError, match="certificate #1 is malformed"):
        load_certificates_pem(pem)


def _b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().strip()


def test_fingerprint_is_sha256_of_the_der(pki: Pki) -> None:
    der = pki.root.public_bytes(serialization.Encoding.DER)
    assert certificate_fingerprint(pki.root) == hashlib.sha256(der).hexdigest()


def test_serial_hex_is_lowercase_hex_without_leading_zeros(pki: Pki) -> None:
    text = serial_hex(pki.root)
    assert text == text.lower()
    assert not text.startswith("0")
    assert int(text, 16) == pki.root.serial_number
