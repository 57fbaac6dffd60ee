"""The issuer's cheap check of a signed leaf (LeafTemplate.is_issued_leaf) against the full
X509-SVID check (validate_x509_svid_leaf): the cheap check may say "not shown" for a valid
leaf (the issuer then runs the full check), but it must never accept a leaf the full check
rejects. Each case below mutates the template's leaf in one way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import IPv4Address

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from citadel.ca.authority import Authority
from citadel.ca.errors import SigningError
from citadel.ca.issuer import Issuer, SignParams
from citadel.ca.leaf_template import LeafTemplate
from citadel.identity.clock import ManualClock
from citadel.identity.errors import InvalidCertificateError
from citadel.identity.keys import KeyType, key_type_of
from citadel.identity.spiffe_id import SpiffeId
from citadel.identity.x509_svid import validate_x509_svid_leaf
from tests.unit.ca.ca_testkit import TRUST_DOMAIN, RecordingRecorder, make_authorities

WORKLOAD = TRUST_DOMAIN.spiffe_id("/ns/a/sa/b")
_Ext = x509.Extension[x509.ExtensionType]
Mutation = Callable[[list[_Ext]], list[_Ext]]


def _usage(**overrides: bool) -> x509.KeyUsage:
    flags = {
        "digital_signature": True,
        "content_commitment": False,
        "key_encipherment": False,
        "data_encipherment": False,
        "key_agreement": False,
        "key_cert_sign": False,
        "crl_sign": False,
        "encipher_only": False,
        "decipher_only": False,
    }
    flags.update(overrides)
    return x509.KeyUsage(**flags)


def _ext(value: x509.ExtensionType, critical: bool) -> _Ext:
    return x509.Extension(value.oid, critical, value)


def _replace(oid: x509.ObjectIdentifier, new: _Ext | None) -> Mutation:
    def mutate(extensions: list[_Ext]) -> list[_Ext]:
        out = [new if e.oid == oid else e for e in extensions]
        return [e for e in out if e is not None]

    return mutate


def _san(*names: x509.GeneralName, critical: bool = True) -> Mutation:
    return _replace(
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME, _ext(x509.SubjectAlternativeName(names), critical)
    )


def _uri(text: str) -> x509.UniformResourceIdentifier:
    return x509.UniformResourceIdentifier(text)


def _append(extension: _Ext) -> Mutation:
    return lambda extensions: [*extensions, extension]


def _swap_first_two(extensions: list[_Ext]) -> list[_Ext]:
    return [extensions[1], extensions[0], *extensions[2:]]


def _unchanged(extensions: list[_Ext]) -> list[_Ext]:
    return extensions


EMPTY_SUBJECT = x509.Name([])


@dataclass(frozen=True)
class Case:
    mutate: Mutation
    subject: x509.Name = EMPTY_SUBJECT


OTHER_ID = TRUST_DOMAIN.spiffe_id("/ns/a/sa/other")
PRIVATE_OID = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")
CASES: dict[str, Case] = {
    "template-leaf": Case(_unchanged),
    "key-usage-not-critical": Case(_replace(ExtensionOID.KEY_USAGE, _ext(_usage(), False))),
    "key-usage-without-digital-signature": Case(
        _replace(ExtensionOID.KEY_USAGE, _ext(_usage(digital_signature=False), True))
    ),
    "key-usage-with-cert-sign": Case(
        _replace(ExtensionOID.KEY_USAGE, _ext(_usage(key_cert_sign=True), True))
    ),
    "key-usage-with-crl-sign": Case(
        _replace(ExtensionOID.KEY_USAGE, _ext(_usage(crl_sign=True), True))
    ),
    "key-usage-with-key-encipherment": Case(
        _replace(ExtensionOID.KEY_USAGE, _ext(_usage(key_encipherment=True), True))
    ),
    "no-key-usage": Case(_replace(ExtensionOID.KEY_USAGE, None)),
    "ca-true": Case(
        _replace(
            ExtensionOID.BASIC_CONSTRAINTS,
            _ext(x509.BasicConstraints(ca=True, path_length=None), True),
        )
    ),
    "no-basic-constraints": Case(_replace(ExtensionOID.BASIC_CONSTRAINTS, None)),
    "basic-constraints-not-critical": Case(
        _replace(
            ExtensionOID.BASIC_CONSTRAINTS,
            _ext(x509.BasicConstraints(ca=False, path_length=None), False),
        )
    ),
    "eku-server-only": Case(
        _replace(
            ExtensionOID.EXTENDED_KEY_USAGE,
            _ext(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        )
    ),
    "no-eku": Case(_replace(ExtensionOID.EXTENDED_KEY_USAGE, None)),
    "san-not-critical": Case(_san(_uri(str(WORKLOAD)), critical=False)),
    "san-not-critical-with-a-subject": Case(
        _san(_uri(str(WORKLOAD)), critical=False),
        subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "w")]),
    ),
    "two-uri-sans": Case(_san(_uri(str(WORKLOAD)), _uri(str(OTHER_ID)))),
    "another-spiffe-id": Case(_san(_uri(str(OTHER_ID)))),
    "trust-domain-id-only": Case(_san(_uri(str(TRUST_DOMAIN.id)))),
    "uri-not-spiffe": Case(_san(_uri("https://example.org/ns/a/sa/b"))),
    "extra-dns-san": Case(_san(_uri(str(WORKLOAD)), x509.DNSName("web.example.org"))),
    "extra-ip-san": Case(_san(_uri(str(WORKLOAD)), x509.IPAddress(IPv4Address("10.0.0.1")))),
    "dns-san-only": Case(_san(x509.DNSName("web.example.org"))),
    "no-san": Case(_replace(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, None)),
    "no-ski": Case(_replace(ExtensionOID.SUBJECT_KEY_IDENTIFIER, None)),
    "no-aki": Case(_replace(ExtensionOID.AUTHORITY_KEY_IDENTIFIER, None)),
    "other-aki": Case(
        _replace(
            ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
            _ext(x509.AuthorityKeyIdentifier(b"\x01" * 20, None, None), False),
        )
    ),
    "extra-extension": Case(
        _append(
            _ext(
                x509.UnrecognizedExtension(PRIVATE_OID, b"\x05\x00"),
                False,
            )
        )
    ),
    "extensions-reordered": Case(_swap_first_two),
}


def _leaf(
    template: LeafTemplate, clock: ManualClock, case: Case, *, key_type: KeyType
) -> x509.Certificate:
    signer = ec.generate_private_key(ec.SECP256R1())
    subject_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    builder = template.builder(
        spiffe_id=WORKLOAD,
        public_key=subject_key,
        key_type=key_type,
        not_before=clock.now(),
        not_after=clock.now() + timedelta(hours=1),
        serial=12345,
    )
    mutated = x509.CertificateBuilder(
        issuer_name=builder._issuer_name,
        subject_name=case.subject,
        public_key=subject_key,
        serial_number=12345,
        not_valid_before=builder._not_valid_before,
        not_valid_after=builder._not_valid_after,
        extensions=case.mutate(list(builder._extensions)),
    )
    return mutated.sign(signer, hashes.SHA256())


def _passes_full_check(leaf: x509.Certificate) -> bool:
    try:
        validate_x509_svid_leaf(leaf)
    except InvalidCertificateError:
        return False
    return True


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048], ids=["ec", "rsa"])
def test_the_cheap_leaf_check_never_accepts_what_the_full_check_rejects(
    clock: ManualClock, case: Case, key_type: KeyType
) -> None:
    signer, _ = make_authorities(clock)
    template = LeafTemplate(signer.cert)
    leaf = _leaf(template, clock, case, key_type=key_type)
    cheap = template.is_issued_leaf(leaf, spiffe_id=WORKLOAD, key_type=key_type)
    full = _passes_full_check(leaf)
    assert not cheap or full
    # Only the template's own leaf is shown valid cheaply. (With keyEncipherment the key
    # usage is the RSA profile's, so that "mutation" is the template leaf for RSA keys.)
    template_leaf = case is CASES["template-leaf"] or (
        key_type.is_rsa and case is CASES["key-usage-with-key-encipherment"]
    )
    assert cheap is template_leaf


def test_the_cheap_check_accepts_the_template_leaf_with_dns_names(clock: ManualClock) -> None:
    signer, _ = make_authorities(clock)
    template = LeafTemplate(signer.cert)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = signer.key.sign_certificate(
        template.builder(
            spiffe_id=WORKLOAD,
            public_key=key.public_key(),
            key_type=KeyType.EC_P256,
            not_before=clock.now(),
            not_after=clock.now() + timedelta(hours=1),
            serial=7,
            dns_names=("web.example.org", "*.svc.example.org"),
        )
    )
    names = ("web.example.org", "*.svc.example.org")
    assert template.is_issued_leaf(
        leaf, spiffe_id=WORKLOAD, key_type=KeyType.EC_P256, dns_names=names
    )
    assert not template.is_issued_leaf(leaf, spiffe_id=WORKLOAD, key_type=KeyType.EC_P256)
    assert not template.is_issued_leaf(
        leaf, spiffe_id=WORKLOAD, key_type=KeyType.EC_P256, dns_names=names[:1]
    )
    assert not template.is_issued_leaf(
        leaf, spiffe_id=SpiffeId.parse(str(OTHER_ID)), key_type=KeyType.EC_P256, dns_names=names
    )


class _RewritingKey:
    """A key handle that signs something other than what it was given (a faulty HSM
    adapter): it applies ``case`` to the builder's extensions first."""

    def __init__(self, inner: Authority, case: Case) -> None:
        self._inner = inner
        self._case = case
        self.key_id = inner.key.key_id
        self.key_type = inner.key.key_type

    def public_key(self) -> object:
        return self._inner.key.public_key()

    def sign_certificate(self, builder: x509.CertificateBuilder) -> x509.Certificate:
        rewritten = x509.CertificateBuilder(
            issuer_name=builder._issuer_name,
            subject_name=self._case.subject,
            public_key=builder._public_key,
            serial_number=builder._serial_number,
            not_valid_before=builder._not_valid_before,
            not_valid_after=builder._not_valid_after,
            extensions=self._case.mutate(list(builder._extensions)),
        )
        return self._inner.key.sign_certificate(rewritten)

    def sign_crl(self, builder: object) -> object:
        raise NotImplementedError

    def sign_bytes(self, data: bytes) -> bytes:
        return self._inner.key.sign_bytes(data)


@pytest.mark.parametrize(
    ("case", "issued"),
    [
        ("no-eku", True),  # not the template's leaf, but a valid X509-SVID
        ("extra-extension", True),
        ("ca-true", False),
        ("key-usage-with-cert-sign", False),
        ("two-uri-sans", False),
        ("no-san", False),
    ],
    ids=lambda v: str(v),
)
def test_a_leaf_that_differs_from_the_template_gets_the_full_check(
    clock: ManualClock, case: str, issued: bool
) -> None:
    signer, root = make_authorities(clock)
    rewriting = Authority(
        signer.cert,
        _RewritingKey(signer, CASES[case]),  # type: ignore[arg-type]
        signer.chain_to_root,
    )
    recorder = RecordingRecorder()
    issuer = Issuer(
        signer=rewriting,
        roots=[root.cert],
        trust_domain=TRUST_DOMAIN,
        recorder=recorder,
        clock=clock,
    )
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    params = SignParams(spiffe_id=WORKLOAD, requester="test")
    try:
        if issued:
            chain = issuer.issue(key, params)
            assert key_type_of(chain.leaf.public_key()) is KeyType.EC_P256
            assert len(recorder.records) == 1
        else:
            with pytest.raises(SigningError, match="not a valid X509-SVID"):
                issuer.issue(key, params)
            assert recorder.records == []
    finally:
        issuer.close()
