"""Pure response building: hints, held-back SVIDs, federated bundles, claim structs."""

from __future__ import annotations

from cryptography.hazmat.primitives.serialization import Encoding
from google.protobuf.struct_pb2 import ListValue

from citadel.identity.bundle import TrustBundle
from citadel.identity.spiffe_id import SpiffeId
from node_agent.workload_api.responses import (
    bundles_by_domain,
    claims_struct,
    jwt_bundles_response,
    x509_bundles_response,
    x509_svid_response,
)
from node_agent.workload_api.source import WorkloadIdentity
from tests.fixtures.pki import Pki
from tests.unit.node_agent.workload_api.fakes import svid_material


def identity(
    pki: Pki, entry_id: str, path: str, hint: str = "", ready: bool = True
) -> WorkloadIdentity:
    spiffe_id = pki.spiffe_id(path)
    return WorkloadIdentity(
        entry_id=entry_id,
        spiffe_id=spiffe_id,
        x509_svid=svid_material(pki, spiffe_id) if ready else None,
        hint=hint,
    )


def test_a_repeated_hint_keeps_only_the_first_svid(td_pki: Pki) -> None:
    bundles = bundles_by_domain([TrustBundle(td_pki.trust_domain, (td_pki.root,))])
    response = x509_svid_response(
        [
            identity(td_pki, "a", "/a", hint="internal"),
            identity(td_pki, "b", "/b", hint="internal"),
            identity(td_pki, "c", "/c"),
            identity(td_pki, "d", "/d"),
        ],
        bundles,
        [],
    )
    assert response is not None
    assert [s.spiffe_id for s in response.svids] == [
        "spiffe://example.org/a",
        "spiffe://example.org/c",
        "spiffe://example.org/d",
    ]


def test_svid_without_a_bundle_for_its_domain_is_held_back(td_pki: Pki, foreign_pki: Pki) -> None:
    bundles = bundles_by_domain([TrustBundle(foreign_pki.trust_domain, (foreign_pki.root,))])
    assert x509_svid_response([identity(td_pki, "a", "/a")], bundles, []) is None


def test_no_ready_svid_means_no_message_yet(td_pki: Pki) -> None:
    bundles = bundles_by_domain([TrustBundle(td_pki.trust_domain, (td_pki.root,))])
    assert x509_svid_response([identity(td_pki, "a", "/a", ready=False)], bundles, []) is None


def test_own_domains_are_not_repeated_as_federated(td_pki: Pki, foreign_pki: Pki) -> None:
    bundles = bundles_by_domain(
        [
            TrustBundle(td_pki.trust_domain, (td_pki.root,)),
            TrustBundle(foreign_pki.trust_domain, (foreign_pki.root,)),
            TrustBundle(SpiffeId.parse("spiffe://jwt-only.org").trust_domain),
        ]
    )
    response = x509_svid_response([identity(td_pki, "a", "/a")], bundles, [b"crl"])
    assert response is not None
    assert dict(response.federated_bundles) == {
        "spiffe://partner.org": foreign_pki.root.public_bytes(Encoding.DER)
    }


def test_bundle_responses_are_none_while_nothing_is_known() -> None:
    assert x509_bundles_response({}, []) is None
    assert jwt_bundles_response({}) is None


def test_claims_become_a_struct_with_nested_values() -> None:
    struct = claims_struct({"sub": "spiffe://x/y", "aud": ["a", "b"], "exp": 10, "n": None})
    assert struct["sub"] == "spiffe://x/y"
    audiences = struct["aud"]
    assert isinstance(audiences, ListValue)
    assert list(audiences) == ["a", "b"]
    assert struct["exp"] == 10
    assert struct["n"] is None
