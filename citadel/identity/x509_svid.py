"""Checks of issued certificates against the X509-SVID standard."""

from __future__ import annotations

from typing import TypeVar, cast

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from citadel.identity.errors import InvalidCertificateError, InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["spiffe_id_of", "validate_signing_certificate", "validate_x509_svid_leaf"]


_T = TypeVar("_T", bound=x509.ExtensionType)
_SAN = x509.SubjectAlternativeName
_BASIC = x509.BasicConstraints
_KEY_USAGE = x509.KeyUsage
_EKU = x509.ExtendedKeyUsage
_CLIENT_SERVER = frozenset({ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH})


def _extension(cert: x509.Certificate, kind: type[_T]) -> x509.Extension[_T] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension) as exc:
        raise InvalidCertificateError("certificate extensions are malformed") from exc


def _extensions_by_class(cert: x509.Certificate) -> dict[type, x509.Extension[x509.ExtensionType]]:
    """Every extension of ``cert`` by the class of its value (parsed extensions have one
    class per OID, and a certificate with a repeated OID does not parse)."""
    try:
        extensions = cert.extensions
    except (ValueError, x509.DuplicateExtension) as exc:
        raise InvalidCertificateError("certificate extensions are malformed") from exc
    return {type(extension.value): extension for extension in extensions}


def _spiffe_id_in(san: x509.Extension[x509.SubjectAlternativeName] | None) -> SpiffeId:
    if san is None:
        raise InvalidCertificateError("certificate has no subject alternative name")
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise InvalidCertificateError(
            f"certificate must carry exactly one URI SAN, found {len(uris)}"
        )
    try:
        return SpiffeId.parse(uris[0])
    except InvalidSpiffeIdError as exc:
        raise InvalidCertificateError(f"URI SAN is not a SPIFFE ID: {exc.message}") from exc


def spiffe_id_of(cert: x509.Certificate) -> SpiffeId:
    """The SPIFFE ID of a certificate that carries exactly one URI SAN.

    Raises:
        InvalidCertificateError: no SAN, not exactly one URI SAN, or an invalid SPIFFE ID.
    """
    return _spiffe_id_in(_extension(cert, x509.SubjectAlternativeName))


def validate_x509_svid_leaf(cert: x509.Certificate) -> SpiffeId:
    """Check a leaf against X509-SVID.md and return its SPIFFE ID.

    Raises:
        InvalidCertificateError: the message names the rule the leaf breaks.
    """
    found = _extensions_by_class(cert)  # one pass over the extensions, not one per rule
    san = cast("x509.Extension[x509.SubjectAlternativeName] | None", found.get(_SAN))
    spiffe_id = _spiffe_id_in(san)
    if spiffe_id.is_trust_domain_id:
        raise InvalidCertificateError("leaf SPIFFE ID must have a path")
    constraints = cast("x509.Extension[x509.BasicConstraints] | None", found.get(_BASIC))
    if constraints is not None and constraints.value.ca:
        raise InvalidCertificateError("leaf must not be a CA (basicConstraints CA=true)")
    usage = cast("x509.Extension[x509.KeyUsage] | None", found.get(_KEY_USAGE))
    if usage is None:
        raise InvalidCertificateError("leaf must carry a key usage extension")
    if not usage.critical:
        raise InvalidCertificateError("leaf key usage must be critical")
    if not usage.value.digital_signature:
        raise InvalidCertificateError("leaf key usage must include digitalSignature")
    if usage.value.key_cert_sign or usage.value.crl_sign:
        raise InvalidCertificateError("leaf key usage must not include keyCertSign or cRLSign")
    eku = cast("x509.Extension[x509.ExtendedKeyUsage] | None", found.get(_EKU))
    if eku is not None:
        purposes = set(eku.value)
        if not purposes >= _CLIENT_SERVER:
            raise InvalidCertificateError("leaf EKU must include serverAuth and clientAuth")
    if san is not None and len(cert.subject) == 0 and not san.critical:
        raise InvalidCertificateError("SAN must be critical when the subject is empty")
    return spiffe_id


def validate_signing_certificate(cert: x509.Certificate) -> None:
    """Check a signing certificate: CA=true, keyCertSign, any SPIFFE ID without a path.

    Raises:
        InvalidCertificateError: the certificate cannot sign X509-SVIDs.
    """
    constraints = _extension(cert, x509.BasicConstraints)
    if constraints is None or not constraints.value.ca:
        raise InvalidCertificateError("signing certificate must have basicConstraints CA=true")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not usage.value.key_cert_sign:
        raise InvalidCertificateError("signing certificate must have keyUsage keyCertSign")
    san = _extension(cert, x509.SubjectAlternativeName)
    if san is not None:
        for uri in san.value.get_values_for_type(x509.UniformResourceIdentifier):
            if uri.startswith("spiffe://"):
                try:
                    spiffe_id = SpiffeId.parse(uri)
                except InvalidSpiffeIdError as exc:
                    raise InvalidCertificateError(
                        f"signing certificate SPIFFE ID is invalid: {exc.message}"
                    ) from exc
                if not spiffe_id.is_trust_domain_id:
                    raise InvalidCertificateError(
                        "signing certificate SPIFFE ID must not have a path"
                    )
