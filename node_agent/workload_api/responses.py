"""Pure translation from the identity source's answers to Workload API messages.

Rules (SPIFFE Workload API): every message carries the full state; bundle maps are keyed
by trust-domain ID (``spiffe://example.org``); an SVID's chain is concatenated DER with
the leaf first, its key PKCS#8 DER, its ``bundle`` the concatenated DER roots of its own
trust domain; federated bundles are the other trust domains'; hints are unique within a
response (a later SVID repeating a hint is left out); JWT bundles hold JWT-SVID keys only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import struct_pb2

from citadel._proto import workload_pb2
from citadel.identity.bundle import TrustBundle
from citadel.identity.spiffe_id import TrustDomain
from node_agent.workload_api.source import WorkloadIdentity

__all__ = [
    "bundles_by_domain",
    "claims_struct",
    "jwt_bundles_response",
    "x509_bundles_response",
    "x509_svid_response",
]

_log = logging.getLogger(__name__)


def bundles_by_domain(bundles: Sequence[TrustBundle]) -> dict[TrustDomain, TrustBundle]:
    return {b.trust_domain: b for b in bundles}


def x509_svid_response(
    identities: Sequence[WorkloadIdentity],
    bundles: Mapping[TrustDomain, TrustBundle],
    crls: Sequence[bytes],
) -> Any | None:
    """The X509SVIDResponse, or None while no entitled SVID is ready to hand out."""
    svids = []
    hints: set[str] = set()
    own_domains: set[TrustDomain] = set()
    for identity in identities:
        material = identity.x509_svid
        if material is None:
            continue
        if identity.hint and identity.hint in hints:
            _log.warning(
                "workload API: entry %s repeats hint %r; left out", identity.entry_id, identity.hint
            )
            continue
        bundle = bundles.get(identity.spiffe_id.trust_domain)
        if bundle is None or not bundle.x509_authorities:
            _log.warning(
                "workload API: no X.509 bundle for %s yet; SVID of entry %s held back",
                identity.spiffe_id.trust_domain,
                identity.entry_id,
            )
            continue
        if identity.hint:
            hints.add(identity.hint)
        own_domains.add(identity.spiffe_id.trust_domain)
        svids.append(
            workload_pb2.X509SVID(
                spiffe_id=str(identity.spiffe_id),
                x509_svid=b"".join(material.chain_der),
                x509_svid_key=material.private_key_der,
                bundle=bundle.to_der(),
                hint=identity.hint,
            )
        )
    if not svids:
        return None
    federated = {
        str(td.id): b.to_der()
        for td, b in bundles.items()
        if td not in own_domains and b.x509_authorities
    }
    return workload_pb2.X509SVIDResponse(svids=svids, crl=list(crls), federated_bundles=federated)


def x509_bundles_response(
    bundles: Mapping[TrustDomain, TrustBundle], crls: Sequence[bytes]
) -> Any | None:
    """The X509BundlesResponse, or None while no X.509 bundle is known."""
    by_id = {str(td.id): b.to_der() for td, b in bundles.items() if b.x509_authorities}
    if not by_id:
        return None
    return workload_pb2.X509BundlesResponse(crl=list(crls), bundles=by_id)


def jwt_bundles_response(bundles: Mapping[TrustDomain, TrustBundle]) -> Any | None:
    """The JWTBundlesResponse (a JWKS of JWT-SVID keys per domain), or None when empty."""
    if not bundles:
        return None
    by_id = {
        str(td.id): json.dumps(b.jwks_dict(), sort_keys=True, separators=(",", ":")).encode()
        for td, b in bundles.items()
    }
    return workload_pb2.JWTBundlesResponse(bundles=by_id)


def claims_struct(claims: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(dict(claims))
    return struct
