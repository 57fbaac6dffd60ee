"""The secrets the agent serves, independent of any protocol (SDS, Workload API, files).

A :class:`TlsCertificateSecret` is a certificate chain (leaf first) with its private key;
a :class:`TrustBundleSecret` is a set of trusted CA certificates. Both are immutable and
carry log-safe names (serials, fingerprints), never key material in their ``repr``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

__all__ = [
    "DEFAULT_CERTIFICATE",
    "DEFAULT_ROOT",
    "Secret",
    "TlsCertificateSecret",
    "TrustBundleSecret",
]

DEFAULT_CERTIFICATE = "default"
DEFAULT_ROOT = "ROOTCA"


@dataclass(frozen=True, kw_only=True, slots=True)
class TlsCertificateSecret:
    """A certificate chain (PEM, leaf first, no self-signed root) and its PKCS#8 PEM key."""

    name: str
    cert_chain_pem: bytes
    private_key_pem: bytes = field(repr=False)
    spiffe_id: str | None
    serial_hex: str
    not_before: datetime
    not_after: datetime

    @property
    def fingerprint(self) -> str:
        """SHA-256 over the chain and key: identifies the content, safe to log."""
        return hashlib.sha256(self.cert_chain_pem + b"\0" + self.private_key_pem).hexdigest()

    def describe(self) -> str:
        who = self.spiffe_id or "(no SPIFFE ID)"
        return f"{self.name}: {who} serial={self.serial_hex} expires={self.not_after.isoformat()}"


@dataclass(frozen=True, kw_only=True, slots=True)
class TrustBundleSecret:
    """Trusted CA certificates (concatenated PEM), optionally with the CAs' CRLs.

    Attributes:
        crls_der: DER CRLs peers' chains are checked against (none: no revocation check).
        crl_leaf_only: check only the leaf against the CRLs (when not every root in the
            bundle has one); otherwise every certificate of a chain is checked.
    """

    name: str
    trusted_ca_pem: bytes
    root_fingerprints: tuple[str, ...]
    not_after: datetime
    crls_der: tuple[bytes, ...] = ()
    crl_leaf_only: bool = False

    @property
    def fingerprint(self) -> str:
        if not self.crls_der:
            return hashlib.sha256(self.trusted_ca_pem).hexdigest()
        digest = hashlib.sha256(self.trusted_ca_pem)
        for der in self.crls_der:
            digest.update(hashlib.sha256(der).digest())
        digest.update(b"leaf" if self.crl_leaf_only else b"chain")
        return digest.hexdigest()

    def describe(self) -> str:
        short = ",".join(fp[:16] for fp in self.root_fingerprints)
        crls = ""
        if self.crls_der:
            scope = "leaf" if self.crl_leaf_only else "chain"
            crls = f", {len(self.crls_der)} CRL(s) checked on the {scope}"
        return f"{self.name}: {len(self.root_fingerprints)} root(s) [{short}]{crls}"


Secret = TlsCertificateSecret | TrustBundleSecret
