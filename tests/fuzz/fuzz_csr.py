"""Fuzz the workload CSR parser and checks: only InvalidCsrError may escape.

Each input is used twice:
  * as raw bytes handed to ``parse_csr`` (PEM or DER), then to ``validate_workload_csr``;
  * as a recipe for a CSR that is built and properly *signed*, so the rules behind the
    signature check (SANs, subject, extensions) are reached too. An accepted recipe must
    carry exactly the one URI SAN the validator reports.

Usage: see tests/fuzz/README.md.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import sys
from collections.abc import Iterable
from pathlib import Path

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports():
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID, ObjectIdentifier

    from citadel.identity.csr import parse_csr, validate_workload_csr
    from citadel.identity.errors import InvalidCsrError

from tests.fuzz._seeds import run_or_write_seeds

SIGNING_KEY = ec.generate_private_key(ec.SECP256R1())
SAN_TEXT = ["spiffe://example.org/ns/default/sa/web", "spiffe://example.org", "web.example.org"]


def _raw(data: bytes) -> None:
    try:
        csr = parse_csr(data)
    except InvalidCsrError:
        return
    for allow_dns_names in (False, True):
        with contextlib.suppress(InvalidCsrError):
            validate_workload_csr(csr, allow_dns_names=allow_dns_names)


def _text(provider: atheris.FuzzedDataProvider) -> str:
    if provider.ConsumeBool():
        index: int = provider.ConsumeIntInRange(0, len(SAN_TEXT) - 1)
        return SAN_TEXT[index]
    return str(provider.ConsumeUnicodeNoSurrogates(48))


def _recipe(provider: atheris.FuzzedDataProvider) -> x509.CertificateSigningRequest | None:
    names: list[x509.GeneralName] = []
    for _ in range(provider.ConsumeIntInRange(0, 3)):
        kind = provider.ConsumeIntInRange(0, 3)
        if kind == 0:
            names.append(x509.UniformResourceIdentifier(_text(provider)))
        elif kind == 1:
            names.append(x509.DNSName(_text(provider)))
        elif kind == 2:
            names.append(x509.IPAddress(ipaddress.ip_address(provider.ConsumeInt(4) % 2**32)))
        else:
            names.append(x509.RFC822Name(_text(provider)))
    attributes = []
    if provider.ConsumeBool():
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, _text(provider)[:64] or "x"))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if names or provider.ConsumeBool():
        builder = builder.add_extension(
            x509.SubjectAlternativeName(names), critical=provider.ConsumeBool()
        )
    if provider.ConsumeBool():
        usage = x509.KeyUsage(
            digital_signature=provider.ConsumeBool(),
            content_commitment=provider.ConsumeBool(),
            key_encipherment=provider.ConsumeBool(),
            data_encipherment=provider.ConsumeBool(),
            key_agreement=provider.ConsumeBool(),
            key_cert_sign=provider.ConsumeBool(),
            crl_sign=provider.ConsumeBool(),
            encipher_only=False,
            decipher_only=False,
        )
        builder = builder.add_extension(usage, critical=True)
    if provider.ConsumeBool():
        builder = builder.add_extension(
            x509.BasicConstraints(ca=provider.ConsumeBool(), path_length=None), critical=True
        )
    if provider.ConsumeBool():
        oid = ObjectIdentifier(f"1.3.6.1.4.1.55555.{provider.ConsumeIntInRange(0, 9)}")
        value = provider.ConsumeBytes(provider.ConsumeIntInRange(0, 16))
        builder = builder.add_extension(x509.UnrecognizedExtension(oid, value), critical=False)
    try:
        return builder.sign(SIGNING_KEY, hashes.SHA256())
    except (ValueError, TypeError):  # the builder refused the recipe: nothing to check
        return None


def _structured(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    try:
        csr = _recipe(provider)
    except (ValueError, TypeError):  # e.g. a non-A-label DNS name in the recipe
        return
    if csr is None:
        return
    for allow_dns_names in (False, True):
        try:
            info = validate_workload_csr(csr, allow_dns_names=allow_dns_names)
        except InvalidCsrError:
            continue
        san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
        if uris != [str(info.spiffe_id)]:
            raise AssertionError(f"accepted URI SANs {uris!r} as {info.spiffe_id}")


def test_one_input(data: bytes) -> None:
    _raw(data)
    _structured(data)


def seeds() -> Iterable[bytes]:
    from cryptography.hazmat.primitives import serialization

    from citadel.identity.csr import build_csr
    from citadel.identity.keys import KeyType, generate_private_key
    from citadel.identity.spiffe_id import SpiffeId

    spiffe_id = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")
    for key_type in (KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048):
        key = generate_private_key(key_type)
        for dns in ((), ("web.example.org",)):
            der = build_csr(key, spiffe_id, dns_names=dns).public_bytes(serialization.Encoding.DER)
            yield der
            body = base64.encodebytes(der)
            yield (
                b"-----BEGIN CERTIFICATE REQUEST-----\n"
                + body
                + (b"-----END CERTIFICATE REQUEST-----\n")
            )


def fuzz(argv: list[str]) -> None:
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    run_or_write_seeds(seeds, fuzz)
