"""Certificate templates: what an X509-SVID leaf and a signing (CA) certificate contain.

The builders returned here are unsigned; signing happens in the key manager, so that
private keys never leave it.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from citadel.identity.keys import PublicKey, key_type_of
from citadel.identity.spiffe_id import SpiffeId, TrustDomain

__all__ = ["CaSpec", "LeafSpec", "ca_builder", "leaf_builder", "random_serial"]


def random_serial() -> int:
    """A positive 128-bit random serial number (never zero)."""
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial


@dataclass(frozen=True, kw_only=True, slots=True)
class LeafSpec:
    spiffe_id: SpiffeId
    public_key: PublicKey
    not_before: datetime
    not_after: datetime
    serial: int = field(default_factory=random_serial)
    dns_names: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class CaSpec:
    trust_domain: TrustDomain
    common_name: str
    public_key: PublicKey
    not_before: datetime
    not_after: datetime
    serial: int = field(default_factory=random_serial)
    path_length: int | None = None
    organization: str = "Citadel"


def leaf_builder(spec: LeafSpec, issuer: x509.Certificate) -> x509.CertificateBuilder:
    """An X509-SVID leaf: one URI SAN, CA=false, critical KeyUsage, serverAuth+clientAuth.

    The subject is empty, so the SAN extension is critical (RFC 5280 4.2.1.6).
    """
    is_rsa = key_type_of(spec.public_key).is_rsa
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spec.spiffe_id))]
    names.extend(x509.DNSName(n) for n in spec.dns_names)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.subject)
        .public_key(spec.public_key)
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=is_rsa,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(names), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(spec.public_key), critical=False)
        .add_extension(_aki(issuer), critical=False)
    )


def ca_builder(spec: CaSpec, issuer: x509.Certificate | None = None) -> x509.CertificateBuilder:
    """A signing certificate: CA=true, keyCertSign+cRLSign, the trust-domain ID as URI SAN.

    ``issuer`` is None for a self-signed root.
    """
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, spec.organization),
            x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(spec.public_key)
        .serial_number(spec.serial)
        .not_valid_before(spec.not_before)
        .not_valid_after(spec.not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=spec.path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(str(spec.trust_domain.id))]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(spec.public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(_aki(issuer), critical=False)
    else:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(spec.public_key), critical=False
        )
    return builder


def _aki(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
