"""Checking that a CA certificate from outside (plug-in directory, upstream CA) chains to a
trusted root.

Verification uses cryptography's ``x509.verification`` path builder, with a custom
:class:`~cryptography.x509.verification.ExtensionPolicy`: the certificate being installed is
itself a CA, which the default end-entity policy refuses, so the end of the chain is checked
with ``ExtensionPolicy.permit_all()`` (its CA profile is checked separately with
:func:`~citadel.identity.x509_svid.validate_signing_certificate`), while every certificate
above it gets the Web PKI CA defaults. Signatures, validity at ``at``, names, basic
constraints and path lengths are all checked by the path builder.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from citadel.identity.clock import utc
from citadel.identity.errors import ChainVerificationError, InvalidCertificateError
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_svid import validate_signing_certificate

__all__ = ["check_ca_certificate", "verify_ca_chain"]

MAX_DEPTH = 6


def check_ca_certificate(cert: x509.Certificate, trust_domain: TrustDomain, at: datetime) -> None:
    """``cert`` can sign X509-SVIDs for ``trust_domain`` now.

    Raises:
        InvalidCertificateError: not a signing certificate, another trust domain, or not
            valid at ``at``.
    """
    validate_signing_certificate(cert)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        for uri in san.get_values_for_type(x509.UniformResourceIdentifier):
            if uri.startswith("spiffe://") and uri != str(trust_domain.id):
                raise InvalidCertificateError(
                    f"the CA certificate belongs to {uri}, not trust domain {trust_domain}"
                )
    moment = utc(at)
    if not cert.not_valid_before_utc <= moment < cert.not_valid_after_utc:
        raise InvalidCertificateError(
            f"the CA certificate is valid from {cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z "
            f"to {cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z, not now"
        )


def verify_ca_chain(
    ca_cert: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
) -> tuple[x509.Certificate, ...]:
    """The verified path ``(ca_cert, ..., root)``.

    Raises:
        ChainVerificationError: no roots, or no valid path from ``ca_cert`` to one of them.
    """
    if not roots:
        raise ChainVerificationError("no trusted root to verify the CA certificate against")
    verifier = (
        PolicyBuilder()
        .store(Store(list(roots)))
        .time(utc(at))
        .max_chain_depth(MAX_DEPTH)
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(ca_cert, list(intermediates))
    except VerificationError as exc:
        raise ChainVerificationError(f"the CA certificate does not chain to a root: {exc}") from exc
    return tuple(verified.chain)
