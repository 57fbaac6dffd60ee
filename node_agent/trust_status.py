"""The status endpoint's view of a trust bundle: roots, and the CRLs handed out with them."""

from __future__ import annotations

from typing import Any

from cryptography import x509

from citadel.identity.pem import load_certificates_pem
from node_agent.secrets import TrustBundleSecret
from node_agent.trust_bundle import bundle_version

__all__ = ["trust_bundle_status"]


def _crl_facts(der: bytes) -> dict[str, Any]:
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError:
        return {"issuer": None, "error": "unparseable"}
    try:
        number: int | None = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound:
        number = None
    return {
        "issuer": crl.issuer.rfc4514_string(),
        "number": number,
        "revoked": len(crl),
        "next_update": crl.next_update_utc.isoformat() if crl.next_update_utc else None,
    }


def trust_bundle_status(secret: TrustBundleSecret) -> dict[str, Any]:
    """JSON-able facts (fingerprints, CRL issuers and numbers; no full certificates)."""
    roots = load_certificates_pem(secret.trusted_ca_pem)
    return {
        "type": "trust_bundle",
        "roots": list(secret.root_fingerprints),
        "bundle_version": bundle_version(roots),
        "crls": [_crl_facts(der) for der in secret.crls_der],
        "crl_scope": ("leaf" if secret.crl_leaf_only else "chain") if secret.crls_der else None,
    }
