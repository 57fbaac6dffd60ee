"""Small CA certificates for the Kubernetes tests (built with Citadel's own templates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from citadel.identity.keys import (
    KeyType,
    PrivateKey,
    generate_private_key,
    private_key_to_pkcs8_pem,
    signature_hash_for,
)
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_templates import CaSpec, ca_builder

NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
TRUST_DOMAIN = TrustDomain("cluster.local")


@dataclass(frozen=True)
class CaPair:
    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return private_key_to_pkcs8_pem(self.key)


def make_ca(name: str, issuer: CaPair | None = None, key_type: KeyType = KeyType.EC_P256) -> CaPair:
    key = generate_private_key(key_type)
    spec = CaSpec(
        trust_domain=TRUST_DOMAIN,
        common_name=name,
        public_key=key.public_key(),
        not_before=NOW - timedelta(days=1),
        not_after=NOW + timedelta(days=365),
    )
    builder = ca_builder(spec, issuer.cert if issuer else None)
    signer = issuer.key if issuer else key
    return CaPair(builder.sign(signer, signature_hash_for(signer)), key)


def make_leaf_like_cert(issuer: CaPair) -> CaPair:
    """A certificate that is not a CA (CA=false): unusable as a signing certificate."""
    key = generate_private_key(KeyType.EC_P256)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier("spiffe://cluster.local/ns/a/sa/b")]
            ),
            critical=True,
        )
        .sign(issuer.key, signature_hash_for(issuer.key))
    )
    return CaPair(cert, key)


def make_crl_pem(issuer: CaPair) -> bytes:
    crl = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(NOW)
        .next_update(NOW + timedelta(days=1))
        .sign(issuer.key, signature_hash_for(issuer.key))
    )
    return crl.public_bytes(serialization.Encoding.PEM)
