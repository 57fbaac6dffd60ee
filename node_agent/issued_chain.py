"""Checks on the chain a CA returns, before the agent uses it.

The response is ``[leaf, intermediates..., roots]`` (each element may hold several PEM
certificates; the last one is the CA's root bundle). It is accepted only if it has at
least two elements, verifies to the roots the agent was configured to trust, names the
SPIFFE ID that was asked for, carries our public key, and is valid now.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from citadel.identity.chain import verify_svid_chain
from citadel.identity.errors import ChainVerificationError, InvalidCertificateError
from citadel.identity.keys import PrivateKey, public_keys_equal
from citadel.identity.pem import certificates_to_pem, load_certificates_pem, serial_hex
from citadel.identity.spiffe_id import SpiffeId
from node_agent.errors import IssuedChainError

__all__ = ["IssuedSvid", "verify_issued_chain"]


@dataclass(frozen=True, kw_only=True, slots=True)
class IssuedSvid:
    """A verified X509-SVID: the leaf, the intermediates to serve with it, and its window."""

    spiffe_id: SpiffeId
    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    serial_hex: str
    not_before: datetime
    not_after: datetime

    def chain_pem(self) -> bytes:
        """Leaf then intermediates (no root), as served to Envoy and written to disk."""
        return certificates_to_pem((self.leaf, *self.intermediates)).encode("ascii")


def _is_self_signed(cert: x509.Certificate) -> bool:
    return cert.issuer == cert.subject


def _window_problem(leaf: x509.Certificate, now: datetime) -> str | None:
    """Why ``leaf`` is outside its validity window at ``now`` (which way the clocks
    differ), or None when it is inside."""
    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    if now < start:
        return (
            f"the certificate is not valid yet: valid from {start.isoformat()}, "
            f"{(start - now).total_seconds():.0f}s after this host's time; this host's clock "
            "is probably behind the CA's (by more than the CA's NotBefore backdating)"
        )
    if now >= end:
        return (
            f"the certificate has already expired: valid until {end.isoformat()}, "
            f"{(now - end).total_seconds():.0f}s before this host's time; this host's clock "
            "is probably ahead of the CA's"
        )
    return None


def verify_issued_chain(
    cert_chain: Sequence[str],
    *,
    expected: SpiffeId,
    key: PrivateKey,
    roots: Sequence[x509.Certificate],
    now: datetime,
) -> IssuedSvid:
    """Verify a CreateCertificate response.

    Raises:
        IssuedChainError: the message says which check failed; the chain must not be used.
    """
    if len(cert_chain) < 2:
        raise IssuedChainError(
            f"CA returned a chain of {len(cert_chain)} element(s); "
            "expected the leaf, any intermediates and the root"
        )
    try:
        parsed = [
            load_certificates_pem(element, what=f"chain element #{i + 1}")
            for i, element in enumerate(cert_chain)
        ]
    except InvalidCertificateError as exc:
        raise IssuedChainError(f"CA returned a malformed chain: {exc.message}") from exc
    leaf, *extra_in_leaf = parsed[0]
    # Everything after the leaf may help path building; trust comes only from ``roots``.
    untrusted = [*extra_in_leaf, *(c for element in parsed[1:] for c in element)]
    try:
        spiffe_id = verify_svid_chain(
            leaf, untrusted, roots, at=now, trust_domain=expected.trust_domain
        )
    except ChainVerificationError as exc:
        window = _window_problem(leaf, now)  # a skewed clock deserves a clear message
        if window is not None:
            raise IssuedChainError(
                f"issued chain rejected: chain does not verify: {window}"
            ) from exc
        raise IssuedChainError(f"issued chain rejected: {exc.message}") from exc
    if spiffe_id != expected:
        raise IssuedChainError(
            f"issued certificate is for {spiffe_id}, but {expected} was requested"
        )
    if not public_keys_equal(leaf.public_key(), key):  # type: ignore[arg-type]
        raise IssuedChainError("issued certificate does not carry the public key of our CSR")
    if not leaf.not_valid_before_utc <= now < leaf.not_valid_after_utc:
        raise IssuedChainError("issued certificate is not valid now")
    intermediates = tuple(c for c in untrusted if not _is_self_signed(c))
    return IssuedSvid(
        spiffe_id=spiffe_id,
        leaf=leaf,
        intermediates=intermediates,
        serial_hex=serial_hex(leaf),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
    )
