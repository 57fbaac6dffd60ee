"""Chain verification with cryptography's ``x509.verification`` (never hand-rolled)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from citadel.identity.clock import utc
from citadel.identity.errors import ChainVerificationError, InvalidCertificateError
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_svid import validate_x509_svid_leaf

__all__ = ["verify_svid_chain"]


def verify_svid_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    trust_domain: TrustDomain | None = None,
) -> SpiffeId:
    """Verify an X509-SVID chain to ``roots`` at time ``at`` and return its SPIFFE ID.

    Raises:
        ChainVerificationError: no roots, the chain does not verify, the leaf is not a valid
            X509-SVID, or it belongs to another trust domain.
    """
    if not roots:
        raise ChainVerificationError("trust bundle is empty")
    try:
        spiffe_id = validate_x509_svid_leaf(leaf)
    except InvalidCertificateError as exc:
        raise ChainVerificationError(f"leaf is not an X509-SVID: {exc.message}") from exc
    if trust_domain is not None and spiffe_id.trust_domain != trust_domain:
        raise ChainVerificationError(
            f"leaf belongs to trust domain {spiffe_id.trust_domain}, expected {trust_domain}"
        )
    verifier = PolicyBuilder().store(Store(list(roots))).time(utc(at)).build_client_verifier()
    try:
        verifier.verify(leaf, list(intermediates))
    except VerificationError as exc:
        raise ChainVerificationError(f"chain does not verify: {exc}") from exc
    return spiffe_id
