from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from citadel.ca.authority import (
    Authority,
    check_importable_root,
    is_self_signed,
    new_intermediate_certificate,
)
from citadel.ca.errors import RootImportError
from citadel.ca.keymanager import MemoryKeyManager
from citadel.identity.clock import ManualClock
from citadel.identity.keys import KeyType, PrivateKey, generate_private_key
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_svid import validate_signing_certificate
from citadel.identity.x509_templates import CaSpec, ca_builder
from tests.unit.ca.ca_testkit import SKEW, TRUST_DOMAIN, make_authorities

TEN_YEARS = timedelta(days=3650)


def test_root_is_self_signed_ca_for_the_trust_domain(clock: ManualClock) -> None:
    _, root = make_authorities(clock)
    validate_signing_certificate(root.cert)
    assert is_self_signed(root.cert)
    san = root.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org"]
    assert root.cert.not_valid_before_utc == clock.now() - SKEW
    assert root.cert.not_valid_after_utc == clock.now() + TEN_YEARS


def test_intermediate_is_signed_by_the_root_and_signs_leaves_only(clock: ManualClock) -> None:
    signer, root = make_authorities(clock)
    signer.cert.verify_directly_issued_by(root.cert)
    validate_signing_certificate(signer.cert)
    constraints = signer.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.path_length == 0
    assert signer.not_after == clock.now() + timedelta(days=365)
    assert signer.intermediates == (signer.cert,)
    assert signer.root == root.cert


def test_intermediate_lifetime_is_clamped_to_the_root(clock: ManualClock) -> None:
    signer, root = make_authorities(
        clock, root_ttl=timedelta(days=30), intermediate_ttl=timedelta(days=365)
    )
    assert signer.not_after == root.not_after


@pytest.mark.parametrize(
    "key_type", [KeyType.EC_P384, KeyType.RSA_2048], ids=["p384", "rsa-2048"]
)
def test_authorities_can_use_other_key_types(clock: ManualClock, key_type: KeyType) -> None:
    signer, root = make_authorities(clock, key_type=key_type)
    signer.cert.verify_directly_issued_by(root.cert)
    assert signer.key.key_type is key_type


def test_authority_refuses_a_key_that_does_not_match_its_certificate(
    clock: ManualClock,
) -> None:
    signer, root = make_authorities(clock)
    with pytest.raises(ValueError, match="does not match"):
        Authority(signer.cert, root.key)


# --- importing an operator's root -----------------------------------------------------------


def _operator_root(
    clock: ManualClock,
    *,
    key: PrivateKey | None = None,
    trust_domain: TrustDomain = TRUST_DOMAIN,
    ca: bool = True,
    path_length: int | None = None,
    lifetime: timedelta = TEN_YEARS,
    start: timedelta = timedelta(days=-1),
) -> tuple[x509.Certificate, PrivateKey]:
    private = key if key is not None else generate_private_key(KeyType.EC_P256)
    spec = CaSpec(
        trust_domain=trust_domain,
        common_name="Operator Root",
        public_key=private.public_key(),
        not_before=clock.now() + start,
        not_after=clock.now() + start + lifetime,
        path_length=path_length,
    )
    builder = ca_builder(spec, None)
    if not ca:
        builder = x509.CertificateBuilder(
            issuer_name=_name(spec), subject_name=_name(spec),
            public_key=private.public_key(), serial_number=1,
            not_valid_before=spec.not_before, not_valid_after=spec.not_after,
        ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return builder.sign(private, hashes.SHA256()), private


def _name(spec: CaSpec) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, spec.common_name)])


def _check(cert: x509.Certificate, key: PrivateKey, clock: ManualClock) -> None:
    check_importable_root(
        cert, key, trust_domain=TRUST_DOMAIN, now=clock.now(), min_remaining=timedelta(hours=24)
    )


def test_a_valid_operator_root_is_importable(clock: ManualClock) -> None:
    cert, key = _operator_root(clock)
    _check(cert, key, clock)


def test_an_imported_root_signs_our_intermediate(clock: ManualClock) -> None:
    cert, private = _operator_root(clock)
    manager = MemoryKeyManager()
    root = Authority(cert, manager.import_key("root", private))
    key = manager.generate_key("intermediate", KeyType.EC_P256)
    intermediate = new_intermediate_certificate(
        key, root, trust_domain=TRUST_DOMAIN, now=clock.now(), ttl=timedelta(days=365), skew=SKEW
    )
    intermediate.verify_directly_issued_by(cert)


def test_root_with_another_key_is_refused(clock: ManualClock) -> None:
    cert, _ = _operator_root(clock)
    with pytest.raises(RootImportError, match="does not match"):
        _check(cert, generate_private_key(KeyType.EC_P256), clock)


def test_root_that_is_not_a_ca_is_refused(clock: ManualClock) -> None:
    cert, key = _operator_root(clock, ca=False)
    with pytest.raises(RootImportError, match="cannot sign"):
        _check(cert, key, clock)


def test_root_that_is_not_self_signed_is_refused(clock: ManualClock) -> None:
    signer, _ = make_authorities(clock)
    manager = MemoryKeyManager()
    private = generate_private_key(KeyType.EC_P256)
    key = manager.import_key("k", private)
    cross = new_intermediate_certificate(
        key, signer, trust_domain=TRUST_DOMAIN, now=clock.now(), ttl=timedelta(days=1), skew=SKEW
    )
    with pytest.raises(RootImportError, match="not self-signed"):
        _check(cross, private, clock)


def test_root_with_path_length_zero_is_refused(clock: ManualClock) -> None:
    cert, key = _operator_root(clock, path_length=0)
    with pytest.raises(RootImportError, match="path length"):
        _check(cert, key, clock)


def test_root_of_another_trust_domain_is_refused(clock: ManualClock) -> None:
    cert, key = _operator_root(clock, trust_domain=TrustDomain("other.org"))
    with pytest.raises(RootImportError, match=r"other\.org"):
        _check(cert, key, clock)


@pytest.mark.parametrize(
    ("start", "lifetime", "message"),
    [
        (timedelta(days=-20), timedelta(days=10), "expires"),
        (timedelta(hours=-1), timedelta(hours=2), "at least 24h"),
        (timedelta(days=1), TEN_YEARS, "not valid yet"),
    ],
    ids=["expired", "expires-within-a-day", "not-yet-valid"],
)
def test_root_outside_its_validity_is_refused(
    clock: ManualClock, start: timedelta, lifetime: timedelta, message: str
) -> None:
    cert, key = _operator_root(clock, start=start, lifetime=lifetime)
    with pytest.raises(RootImportError, match=message):
        _check(cert, key, clock)


def test_root_with_a_weak_rsa_key_is_refused(clock: ManualClock) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 (deliberately weak)
    cert, _ = _operator_root(clock, key=weak)
    with pytest.raises(RootImportError, match="too weak"):
        _check(cert, weak, clock)
