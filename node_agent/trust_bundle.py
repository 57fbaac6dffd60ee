"""Pure rules for taking a trust bundle and CRLs from the CA (no I/O, no state).

* :func:`bundle_version` names a set of roots exactly as the CA does, so the agent can
  acknowledge the version it serves.
* :func:`root_transition` accepts a new root set only as a superset or a subset of the one
  the agent trusts (a root is added before it signs, and removed after it stops): a bundle
  that shares nothing with what the agent trusts, or swaps roots in one step, is refused.
* :func:`plan_crls` decides what Envoy gets for revocation. Envoy, once given CRLs, needs
  one for *every* CA of a chain it checks (else it refuses even unrevoked certificates),
  and refuses every chain while a CRL is expired. So: every CRL must parse, be current,
  and verify against its issuer when the agent knows the issuer; every root having a CRL
  means whole chains are checked; otherwise only leaves are, provided the agent's own
  issuing intermediates have CRLs; otherwise no CRLs are handed out at all.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from citadel.identity.pem import certificate_fingerprint
from node_agent.errors import BundleRejectedError

__all__ = ["CrlPlan", "RootChange", "bundle_version", "plan_crls", "root_transition"]

MAX_CRLS = 64


def bundle_version(roots: Iterable[x509.Certificate]) -> str:
    """SHA-256 over the roots' sorted SHA-256 fingerprints (hex, one per line), first 16
    hex digits: order and duplicates do not matter (the CA names its bundles the same way)."""
    prints = sorted({certificate_fingerprint(root) for root in roots})
    return hashlib.sha256("\n".join(prints).encode("ascii")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class RootChange:
    """How an offered root set differs from the trusted one (fingerprints)."""

    added: frozenset[str]
    removed: frozenset[str]

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def describe(self) -> str:
        if not self.changed:
            return "same roots"
        parts = []
        if self.added:
            parts.append("adds " + ", ".join(sorted(fp[:16] for fp in self.added)))
        if self.removed:
            parts.append("removes " + ", ".join(sorted(fp[:16] for fp in self.removed)))
        return "; ".join(parts)


def root_transition(
    trusted: Sequence[x509.Certificate], offered: Sequence[x509.Certificate]
) -> RootChange:
    """Check that ``offered`` may replace ``trusted``.

    Raises:
        BundleRejectedError: ``offered`` is empty, or neither a superset nor a subset.
    """
    if not offered:
        raise BundleRejectedError("the CA's bundle holds no root")
    old = {certificate_fingerprint(c) for c in trusted}
    new = {certificate_fingerprint(c) for c in offered}
    change = RootChange(added=frozenset(new - old), removed=frozenset(old - new))
    if change.added and change.removed:
        raise BundleRejectedError(
            f"the CA's bundle {change.describe()} at once; a root may only be added to or "
            "removed from the bundle the agent trusts, one step at a time (update the "
            "configured root file and restart the agent to re-anchor)"
        )
    return change


@dataclass(frozen=True, slots=True)
class CrlPlan:
    """What Envoy gets: the CRLs (DER), whether only leaves are checked, and why.

    ``valid_until`` is the earliest ``nextUpdate`` of the CRLs handed out (None: none, or
    none expires).
    """

    crls: tuple[bytes, ...]
    leaf_only: bool
    valid_until: datetime | None
    note: str = ""


def _issued_by(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    if crl.issuer != cert.subject:
        return False
    try:
        return bool(crl.is_signature_valid(cert.public_key()))  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):
        return False


def _checked(
    crls_der: Sequence[bytes], known_issuers: Sequence[x509.Certificate], now: datetime
) -> list[x509.CertificateRevocationList]:
    if len(crls_der) > MAX_CRLS:
        raise BundleRejectedError(f"the CA sent {len(crls_der)} CRLs; at most {MAX_CRLS} are used")
    parsed = []
    for index, der in enumerate(crls_der):
        try:
            crl = x509.load_der_x509_crl(der)
        except ValueError as exc:
            raise BundleRejectedError(f"CRL #{index + 1} from the CA does not parse") from exc
        issuer = crl.issuer.rfc4514_string()[:200]
        if now < crl.last_update_utc:
            raise BundleRejectedError(f"the CRL of {issuer} is not valid yet")
        if crl.next_update_utc is not None and now >= crl.next_update_utc:
            raise BundleRejectedError(f"the CRL of {issuer} expired")
        named = [c for c in known_issuers if c.subject == crl.issuer]
        if named and not any(_issued_by(crl, c) for c in named):
            raise BundleRejectedError(f"the CRL of {issuer} is not signed by that CA")
        parsed.append(crl)
    return parsed


def plan_crls(
    roots: Sequence[x509.Certificate],
    crls_der: Sequence[bytes],
    *,
    own_intermediates: Sequence[x509.Certificate],
    now: datetime,
) -> CrlPlan:
    """Decide which CRLs to hand to Envoy with ``roots`` (see the module docstring).

    Raises:
        BundleRejectedError: a CRL does not parse, is not current, or is not signed by the
            root or intermediate it names.
    """
    crls = _checked(crls_der, [*roots, *own_intermediates], now)
    if not crls:
        return CrlPlan((), leaf_only=False, valid_until=None)
    ends = [c.next_update_utc for c in crls if c.next_update_utc is not None]
    until = min(ends, default=None)
    missing = [c for c in own_intermediates if not any(_issued_by(crl, c) for crl in crls)]
    if missing:
        return CrlPlan(
            (),
            leaf_only=False,
            valid_until=None,
            note=(
                f"no CRL for intermediate {missing[0].subject.rfc4514_string()[:200]}: CRLs "
                "are not handed to Envoy (it would refuse every chain through that CA)"
            ),
        )
    if all(any(_issued_by(crl, root) for crl in crls) for root in roots):
        return CrlPlan(tuple(crls_der), leaf_only=False, valid_until=until)
    return CrlPlan(
        tuple(crls_der),
        leaf_only=True,
        valid_until=until,
        note="not every root has a CRL: only leaves are checked for revocation",
    )
