"""Errors of the network-free identity layer."""

from __future__ import annotations

from citadel.errors import CitadelError

__all__ = [
    "ChainVerificationError",
    "IdentityError",
    "InvalidBundleError",
    "InvalidCertificateError",
    "InvalidCsrError",
    "InvalidKeyError",
    "InvalidSpiffeIdError",
    "InvalidTrustDomainError",
]


class IdentityError(CitadelError):
    kind = "invalid_identity"


class InvalidSpiffeIdError(IdentityError, ValueError):
    """A string is not a valid SPIFFE ID; the message names the rule that failed."""

    kind = "invalid_spiffe_id"


class InvalidTrustDomainError(InvalidSpiffeIdError):
    kind = "invalid_trust_domain"


class InvalidKeyError(IdentityError, ValueError):
    """A key is malformed, of a forbidden type, or too weak."""

    kind = "invalid_key"


class InvalidCsrError(IdentityError, ValueError):
    """A CSR is malformed or breaks the workload CSR rules."""

    kind = "invalid_csr"


class InvalidCertificateError(IdentityError, ValueError):
    """A certificate is malformed or breaks the X509-SVID rules."""

    kind = "invalid_certificate"


class InvalidBundleError(IdentityError, ValueError):
    """A trust bundle (PEM or SPIFFE JWKS) is malformed."""

    kind = "invalid_bundle"


class ChainVerificationError(IdentityError):
    """A certificate chain does not verify to the trust bundle."""

    kind = "chain_verification_failed"
