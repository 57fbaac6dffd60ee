"""A per-signer X509-SVID leaf template: everything that does not change between leaves
(issuer name, AKI, basic constraints, key usage, EKU) is built once per signer.

It produces exactly the to-be-signed content of
:func:`citadel.identity.x509_templates.leaf_builder` (a unit test compares the two byte for
byte, so the profiles cannot drift apart) but builds the certificate in one constructor
call instead of a dozen copying setter calls, which matters on the signing hot path.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from citadel.identity.keys import KeyType, PublicKey
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["LeafTemplate", "der_to_pem"]

_EMPTY_NAME = x509.Name([])
_PEM_HEADER = "-----BEGIN CERTIFICATE-----\n"
_PEM_FOOTER = "-----END CERTIFICATE-----\n"


def der_to_pem(der: bytes) -> str:
    """PEM text of a DER certificate (64-column base64, as OpenSSL writes it)."""
    text = base64.b64encode(der).decode("ascii")
    lines = "\n".join(text[i : i + 64] for i in range(0, len(text), 64))
    return f"{_PEM_HEADER}{lines}\n{_PEM_FOOTER}"


def _key_usage(*, key_encipherment: bool) -> x509.Extension[x509.ExtensionType]:
    usage = x509.KeyUsage(
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
    return x509.Extension(usage.oid, True, usage)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


class LeafTemplate:
    """Builds unsigned X509-SVID leaves for one issuer certificate."""

    __slots__ = ("_aki", "_basic", "_eku", "_issuer_name", "_ku_ec", "_ku_rsa")

    def __init__(self, issuer: x509.Certificate) -> None:
        self._issuer_name = issuer.subject
        aki = _authority_key_identifier(issuer)
        self._aki: x509.Extension[x509.ExtensionType] = x509.Extension(aki.oid, False, aki)
        basic = x509.BasicConstraints(ca=False, path_length=None)
        self._basic: x509.Extension[x509.ExtensionType] = x509.Extension(basic.oid, True, basic)
        eku = x509.ExtendedKeyUsage(
            [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        )
        self._eku: x509.Extension[x509.ExtensionType] = x509.Extension(eku.oid, False, eku)
        self._ku_ec = _key_usage(key_encipherment=False)
        self._ku_rsa = _key_usage(key_encipherment=True)

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
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(str(spiffe_id))]
        names.extend(x509.DNSName(n) for n in dns_names)
        san = x509.SubjectAlternativeName(names)
        ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
        extensions: list[x509.Extension[x509.ExtensionType]] = [
            self._basic,
            self._ku_rsa if key_type.is_rsa else self._ku_ec,
            self._eku,
            x509.Extension(san.oid, True, san),
            x509.Extension(ski.oid, False, ski),
            self._aki,
        ]
        return x509.CertificateBuilder(
            issuer_name=self._issuer_name,
            subject_name=_EMPTY_NAME,
            public_key=public_key,
            serial_number=serial,
            not_valid_before=_naive_utc(not_before),
            not_valid_after=_naive_utc(not_after),
            extensions=extensions,
        )



def _authority_key_identifier(issuer: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()  # type: ignore[arg-type]
        )
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
