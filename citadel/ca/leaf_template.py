"""A per-signer X509-SVID leaf template: everything that does not change between leaves
(issuer name, AKI, basic constraints, key usage, EKU) is built and DER-encoded once per signer.

It produces exactly the to-be-signed content of
:func:`citadel.identity.x509_templates.leaf_builder` (a unit test compares the two byte for
byte, so the profiles cannot drift apart) but builds the certificate in one constructor
call instead of a dozen copying setter calls, which matters on the signing hot path.

It also checks each signed leaf cheaply (:meth:`LeafTemplate.is_issued_leaf`): the signed
certificate must carry exactly the template's extensions, in order, with the requested
SAN. The template's own extensions are checked against the X509-SVID rules once, when the
template is made, so a leaf that passes the cheap check is a valid X509-SVID (a unit test
compares the cheap check with :func:`~citadel.identity.x509_svid.validate_x509_svid_leaf`
on mutated certificates).
"""

from __future__ import annotations

import binascii
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from citadel.identity.errors import InvalidCertificateError
from citadel.identity.keys import KeyType, PublicKey
from citadel.identity.spiffe_id import SpiffeId
from citadel.identity.x509_svid import validate_x509_svid_leaf

__all__ = ["LeafTemplate", "der_to_pem"]

_EMPTY_NAME = x509.Name([])
_PEM_HEADER = "-----BEGIN CERTIFICATE-----\n"
_PEM_FOOTER = "-----END CERTIFICATE-----\n"
_PEM_LINE_BYTES = 48  # 64 base64 characters
_SAN_OID = ExtensionOID.SUBJECT_ALTERNATIVE_NAME
_SKI_OID = ExtensionOID.SUBJECT_KEY_IDENTIFIER

_LEAF_EXTENSIONS = 6  # basic constraints, key usage, EKU, SAN, SKI, AKI
_Ext = x509.Extension[x509.ExtensionType]


def der_to_pem(der: bytes) -> str:
    """PEM text of a DER certificate (64-column base64, as OpenSSL writes it)."""
    b2a = binascii.b2a_base64  # one "\n"-terminated line per 48 bytes
    body = b"".join(
        [b2a(der[i : i + _PEM_LINE_BYTES]) for i in range(0, len(der), _PEM_LINE_BYTES)]
    )
    return f"{_PEM_HEADER}{body.decode('ascii')}{_PEM_FOOTER}"


def _key_usage(*, key_encipherment: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _naive_utc(value: datetime) -> datetime:
    return (value if value.tzinfo is UTC else value.astimezone(UTC)).replace(tzinfo=None)


def _encoded(value: x509.ExtensionType, *, critical: bool) -> _Ext:
    """An extension whose DER value is encoded now, once, rather than at every signing."""
    return x509.Extension(
        value.oid, critical, x509.UnrecognizedExtension(value.oid, value.public_bytes())
    )


def _san(spiffe_id: SpiffeId, dns_names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
    names.extend(x509.DNSName(n) for n in dns_names)
    return x509.SubjectAlternativeName(names)


class LeafTemplate:
    """Builds unsigned X509-SVID leaves for one issuer certificate, and checks signed ones."""

    __slots__ = ("_head_ec", "_head_rsa", "_issuer_name", "_static_ec", "_static_rsa", "_tail")

    def __init__(self, issuer: x509.Certificate) -> None:
        self._issuer_name = issuer.subject
        basic = x509.BasicConstraints(ca=False, path_length=None)
        eku = x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        aki = _authority_key_identifier(issuer)
        # What goes before the SAN and SKI, and after them, for each key-usage profile.
        self._head_ec = (
            _encoded(basic, critical=True),
            _encoded(_key_usage(key_encipherment=False), critical=True),
            _encoded(eku, critical=False),
        )
        self._head_rsa = (
            self._head_ec[0],
            _encoded(_key_usage(key_encipherment=True), critical=True),
            self._head_ec[2],
        )
        self._tail = (_encoded(aki, critical=False),)
        # The same extensions as parsed from a signed leaf, to compare issued leaves with.
        self._static_ec = _checked_profile(self, KeyType.EC_P256)
        self._static_rsa = _checked_profile(self, KeyType.RSA_2048)

    def builder(
        self,
        *,
        spiffe_id: SpiffeId,
        public_key: PublicKey,
        key_type: KeyType,
        not_before: datetime,
        not_after: datetime,
        serial: int,
        dns_names: tuple[str, ...] = (),
    ) -> x509.CertificateBuilder:
        """The unsigned leaf; ``key_type`` must be ``key_type_of(public_key)``."""
        san = _san(spiffe_id, dns_names)
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
        return x509.CertificateBuilder(
            issuer_name=self._issuer_name,
            subject_name=_EMPTY_NAME,
            public_key=public_key,
            serial_number=serial,
            not_valid_before=_naive_utc(not_before),
            not_valid_after=_naive_utc(not_after),
            extensions=[
                *(self._head_rsa if key_type.is_rsa else self._head_ec),
                x509.Extension(_SAN_OID, True, san),
                x509.Extension(_SKI_OID, False, ski),
                *self._tail,
            ],
        )

    def is_issued_leaf(
        self,
        leaf: x509.Certificate,
        *,
        spiffe_id: SpiffeId,
        key_type: KeyType,
        dns_names: tuple[str, ...] = (),
    ) -> bool:
        """True if ``leaf`` carries exactly this template's extensions, in order, with a
        critical SAN of ``spiffe_id`` (which must have a path) and ``dns_names``.

        Such a leaf is a valid X509-SVID. False means "not shown cheaply"; the caller then
        runs :func:`~citadel.identity.x509_svid.validate_x509_svid_leaf` for the verdict.
        """
        if spiffe_id.is_trust_domain_id:
            return False
        try:
            extensions = leaf.extensions
        except (ValueError, x509.DuplicateExtension, x509.UnsupportedGeneralNameType):
            return False
        if len(extensions) != _LEAF_EXTENSIONS:
            return False
        basic, usage, eku, san, ski, aki = extensions
        if (basic, usage, eku, aki) != (self._static_rsa if key_type.is_rsa else self._static_ec):
            return False
        if san.oid != _SAN_OID or san.critical is not True or ski.oid != _SKI_OID:
            return False
        names = list(san.value)
        if not names or names[0] != x509.UniformResourceIdentifier(str(spiffe_id)):
            return False
        return names[1:] == [x509.DNSName(n) for n in dns_names]


def _checked_profile(template: LeafTemplate, key_type: KeyType) -> tuple[_Ext, ...]:
    """Sign a sample leaf with the template, check it against the X509-SVID rules, and
    return its static extensions (all but the SAN and SKI) as parsed."""
    key = ec.generate_private_key(ec.SECP256R1())
    sample_id = SpiffeId.parse("spiffe://template.invalid/check")
    now = datetime(2000, 1, 1, tzinfo=UTC)
    sample = template.builder(
        spiffe_id=sample_id,
        public_key=key.public_key(),
        key_type=key_type,
        not_before=now,
        not_after=now + timedelta(hours=1),
        serial=1,
    ).sign(key, hashes.SHA256())
    try:
        validate_x509_svid_leaf(sample)
    except InvalidCertificateError as exc:  # a programming error in this module
        raise RuntimeError(f"the leaf template breaks X509-SVID: {exc.message}") from exc
    extensions = list(sample.extensions)
    if len(extensions) != _LEAF_EXTENSIONS:
        raise RuntimeError("the leaf template does not have the expected extensions")
    basic, usage, eku, _san, _ski, aki = extensions
    return (basic, usage, eku, aki)


def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
