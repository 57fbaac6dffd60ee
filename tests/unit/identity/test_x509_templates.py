"""What the leaf and CA templates put into a certificate."""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.spiffe_id import SpiffeId
from citadel.identity.x509_templates import (
    CaSpec,
    LeafSpec,
    ca_builder,
    leaf_builder,
    random_serial,
)
from tests.conftest import FIXED_NOW
from tests.fixtures.pki import Pki


def _ext(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_class(kind)


def test_random_serial_is_positive_and_at_most_128_bits() -> None:
    serials = {random_serial() for _ in range(64)}
    assert len(serials) == 64
    assert all(0 < s < 2**128 for s in serials)
    # 64 draws of 128 random bits: at least one uses the top 32 bits (p(fail) ~ 2**-2048)
    assert max(serials).bit_length() > 96


def test_leaf_spec_draws_a_fresh_serial_per_spec() -> None:
    key = generate_private_key()

    def make() -> LeafSpec:
        return LeafSpec(
            spiffe_id=SpiffeId.parse("spiffe://example.org/a"),
            public_key=key.public_key(),
            not_before=FIXED_NOW,
            not_after=FIXED_NOW + timedelta(hours=1),
        )

    assert make().serial != make().serial


def test_leaf_template_holds_exactly_the_x509_svid_profile(any_pki: Pki) -> None:
    leaf, leaf_key = any_pki.issue_leaf("/ns/default/sa/web")
    assert leaf.subject == x509.Name([])
    assert leaf.issuer == any_pki.intermediate.subject
    assert leaf.not_valid_before_utc == FIXED_NOW - timedelta(minutes=2)

    constraints = _ext(leaf, x509.BasicConstraints)
    assert constraints.critical and constraints.value == x509.BasicConstraints(
        ca=False, path_length=None
    )
    usage = _ext(leaf, x509.KeyUsage)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage)
    assert usage.value.digital_signature
    assert usage.value.key_encipherment == any_pki.key_type.is_rsa
    assert not usage.value.key_cert_sign and not usage.value.crl_sign
    eku = _ext(leaf, x509.ExtendedKeyUsage)
    assert list(eku.value) == [  # type: ignore[call-overload]
        ExtendedKeyUsageOID.SERVER_AUTH,
        ExtendedKeyUsageOID.CLIENT_AUTH,
    ]
    san = _ext(leaf, x509.SubjectAlternativeName)
    assert san.critical  # the subject is empty (RFC 5280 4.2.1.6)
    assert isinstance(san.value, x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://example.org/ns/default/sa/web"
    ]
    ski = _ext(leaf, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key())
    aki = _ext(leaf, x509.AuthorityKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    issuer_ski = _ext(any_pki.intermediate, x509.SubjectKeyIdentifier).value
    assert isinstance(issuer_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == issuer_ski.digest


def test_leaf_template_adds_dns_names_after_the_uri(pki: Pki) -> None:
    leaf, _ = pki.issue_leaf(dns_names=("web.example.org", "web"))
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert [type(n).__name__ for n in san] == ["UniformResourceIdentifier", "DNSName", "DNSName"]
    assert san.get_values_for_type(x509.DNSName) == ["web.example.org", "web"]


def test_leaf_template_keeps_the_spec_serial_and_validity(pki: Pki) -> None:
    key = generate_private_key()
    spec = LeafSpec(
        spiffe_id=pki.spiffe_id("/a"),
        public_key=key.public_key(),
        not_before=FIXED_NOW,
        not_after=FIXED_NOW + timedelta(hours=3),
        serial=12345,
    )
    cert = leaf_builder(spec, pki.intermediate).sign(pki.intermediate_key, hashes.SHA256())
    assert cert.serial_number == 12345
    assert cert.not_valid_before_utc == FIXED_NOW
    assert cert.not_valid_after_utc == FIXED_NOW + timedelta(hours=3)


@pytest.mark.parametrize(
    ("path_length", "expected"),
    [pytest.param(None, None, id="unlimited"), pytest.param(0, 0, id="path-length-0")],
)
def test_ca_template_is_a_critical_ca_with_cert_and_crl_signing(
    path_length: int | None, expected: int | None, pki: Pki
) -> None:
    key = generate_private_key(KeyType.EC_P256)
    spec = CaSpec(
        trust_domain=pki.trust_domain,
        common_name="test ca",
        public_key=key.public_key(),
        not_before=FIXED_NOW,
        not_after=FIXED_NOW + timedelta(days=1),
        path_length=path_length,
    )
    cert = ca_builder(spec, None).sign(key, hashes.SHA256())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "test ca"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Citadel"
    assert cert.issuer == cert.subject
    constraints = _ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=expected)
    usage = _ext(cert, x509.KeyUsage)
    assert usage.critical
    assert isinstance(usage.value, x509.KeyUsage)
    assert usage.value.key_cert_sign and usage.value.crl_sign
    san = _ext(cert, x509.SubjectAlternativeName).value
    assert isinstance(san, x509.SubjectAlternativeName)
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org"]
    aki = _ext(cert, x509.AuthorityKeyIdentifier).value
    ski = _ext(cert, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == ski.digest  # self-signed: AKI names its own key


def test_intermediate_template_names_its_issuer(pki: Pki) -> None:
    assert pki.intermediate.issuer == pki.root.subject
    aki = _ext(pki.intermediate, x509.AuthorityKeyIdentifier).value
    root_ski = _ext(pki.root, x509.SubjectKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert isinstance(root_ski, x509.SubjectKeyIdentifier)
    assert aki.key_identifier == root_ski.digest
