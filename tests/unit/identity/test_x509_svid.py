"""X509-SVID checks (X509-SVID.md) against certificates named by their defect."""

from __future__ import annotations

import dataclasses

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from citadel.identity.errors import InvalidCertificateError
from citadel.identity.spiffe_id import SpiffeId
from citadel.identity.x509_svid import (
    spiffe_id_of,
    validate_signing_certificate,
    validate_x509_svid_leaf,
)
from tests.fixtures.pki import Pki
from tests.fixtures.x509_defects import (
    DEFECTIVE_LEAVES,
    DEFECTIVE_SIGNING_CERTIFICATES,
    LeafShape,
    SigningShape,
    build_leaf,
    build_signing_certificate,
)

WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        pytest.param(shape, fragment, id=name)
        for name, (shape, fragment) in DEFECTIVE_LEAVES.items()
    ],
)
def test_defective_leaf_is_rejected_naming_the_rule(
    shape: LeafShape, fragment: str, pki: Pki
) -> None:
    with pytest.raises(InvalidCertificateError) as caught:
        validate_x509_svid_leaf(build_leaf(pki, shape))
    assert caught.value.message == fragment
    assert caught.value.kind == "invalid_certificate"


def test_leaf_built_by_hand_to_the_standard_is_accepted(pki: Pki) -> None:
    """The baseline every defect departs from is itself valid, so each defect is the cause."""
    assert validate_x509_svid_leaf(build_leaf(pki)) == WEB


def test_leaf_from_leaf_builder_is_accepted(any_pki: Pki) -> None:
    leaf, _ = any_pki.issue_leaf("/ns/default/sa/web")
    assert validate_x509_svid_leaf(leaf) == WEB


def test_leaf_with_dns_names_from_leaf_builder_is_accepted(pki: Pki) -> None:
    leaf, _ = pki.issue_leaf(dns_names=("web.example.org",))
    assert validate_x509_svid_leaf(leaf) == WEB


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param(LeafShape(eku=None), id="leaf-without-eku (EKU is optional)"),
        pytest.param(
            LeafShape(basic_constraints=None), id="leaf-without-basic-constraints (CA absent)"
        ),
        pytest.param(
            LeafShape(
                san_critical=False,
                subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "web")]),
            ),
            id="leaf-with-subject-and-non-critical-san",
        ),
        pytest.param(LeafShape(dns_names=("web.example.org",)), id="leaf-with-dns-beside-the-uri"),
    ],
)
def test_leaf_variant_the_standard_allows_is_accepted(shape: LeafShape, pki: Pki) -> None:
    assert validate_x509_svid_leaf(build_leaf(pki, shape)) == WEB


def test_spiffe_id_of_reads_the_single_uri_san(pki: Pki) -> None:
    assert spiffe_id_of(build_leaf(pki)) == WEB


def test_spiffe_id_of_a_root_is_its_trust_domain_id(pki: Pki) -> None:
    assert spiffe_id_of(pki.root) == pki.trust_domain.id


# --- signing certificates -------------------------------------------------------------------


def test_root_and_intermediate_from_ca_builder_are_valid_signers(any_pki: Pki) -> None:
    validate_signing_certificate(any_pki.root)
    validate_signing_certificate(any_pki.intermediate)


def test_signing_certificate_built_by_hand_to_the_standard_is_accepted(pki: Pki) -> None:
    validate_signing_certificate(build_signing_certificate(pki))


def test_signing_certificate_without_any_uri_san_is_accepted(pki: Pki) -> None:
    validate_signing_certificate(build_signing_certificate(pki, SigningShape(uris=())))


def test_signing_certificate_with_a_non_spiffe_uri_is_accepted(pki: Pki) -> None:
    shape = SigningShape(uris=("https://ca.example.org/policy",))
    validate_signing_certificate(build_signing_certificate(pki, shape))


@pytest.mark.parametrize(
    ("shape", "fragment"),
    [
        pytest.param(shape, fragment, id=name)
        for name, (shape, fragment) in DEFECTIVE_SIGNING_CERTIFICATES.items()
    ],
)
def test_defective_signing_certificate_is_rejected_naming_the_rule(
    shape: SigningShape, fragment: str, pki: Pki
) -> None:
    with pytest.raises(InvalidCertificateError) as caught:
        validate_signing_certificate(build_signing_certificate(pki, shape))
    assert caught.value.message == fragment


def test_a_leaf_is_not_a_signing_certificate(pki: Pki) -> None:
    leaf, _ = pki.issue_leaf()
    with pytest.raises(InvalidCertificateError, match="must have basicConstraints CA=true"):
        validate_signing_certificate(leaf)


def test_a_signing_certificate_is_not_a_leaf(pki: Pki) -> None:
    with pytest.raises(InvalidCertificateError, match="leaf SPIFFE ID must have a path"):
        validate_x509_svid_leaf(pki.intermediate)
    with_path = build_signing_certificate(
        pki, dataclasses.replace(SigningShape(), uris=(str(WEB),))
    )
    with pytest.raises(InvalidCertificateError, match="leaf must not be a CA"):
        validate_x509_svid_leaf(with_path)
