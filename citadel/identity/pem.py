"""PEM and DER helpers for certificates, plus the log-safe names of a certificate."""

from __future__ import annotations

import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from citadel.identity.errors import InvalidCertificateError

__all__ = [
    "MAX_PEM_BYTES",
    "certificate_fingerprint",
    "certificates_to_pem",
    "load_certificate_der",
    "load_certificates_pem",
    "serial_hex",
]

MAX_PEM_BYTES = 1024 * 1024
_PEM_CERT = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


def load_certificates_pem(
    data: bytes | str, *, what: str = "certificate PEM"
) -> list[x509.Certificate]:
    """Parse every certificate in a PEM blob, in order.

    Raises:
        InvalidCertificateError: empty, oversized, or any block fails to parse.
    """
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else data
    if len(raw) > MAX_PEM_BYTES:
        raise InvalidCertificateError(f"{what} is larger than {MAX_PEM_BYTES} bytes")
    blocks = _PEM_CERT.findall(raw)
    if not blocks:
        raise InvalidCertificateError(f"{what} holds no certificate")
    certs = []
    for index, block in enumerate(blocks):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except (ValueError, x509.InvalidVersion) as exc:  # InvalidVersion is not a ValueError
            raise InvalidCertificateError(f"{what}: certificate #{index + 1} is malformed") from exc
    return certs


def load_certificate_der(data: bytes) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(data)
    except (ValueError, x509.InvalidVersion) as exc:
        raise InvalidCertificateError("certificate DER is malformed") from exc


def certificates_to_pem(certs: list[x509.Certificate] | tuple[x509.Certificate, ...]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the DER certificate, lowercase hex."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def serial_hex(cert: x509.Certificate) -> str:
    """The serial number as lowercase hex without leading zeros."""
    return format(cert.serial_number, "x")
