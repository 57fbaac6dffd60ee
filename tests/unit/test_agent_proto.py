"""The agent API's wire contract: package, service, methods and field numbers stay put (a CA
and its agents are upgraded at different times)."""

from __future__ import annotations

import pytest

from citadel._proto import citadel_agent_pb2 as pb


def test_service_is_citadel_agent_v1_agentservice_with_its_four_methods() -> None:
    service = pb.DESCRIPTOR.services_by_name["AgentService"]
    assert service.full_name == "citadel.agent.v1.AgentService"
    assert [m.name for m in service.methods] == [
        "SyncEntries",
        "BatchNewX509SVID",
        "NewJWTSVID",
        "GetBundle",
    ]


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        (
            "RegistrationEntry",
            {
                "entry_id": 1,
                "spiffe_id": 2,
                "parent_id": 3,
                "selectors": 4,
                "ttl_seconds": 5,
                "dns_names": 6,
                "revision": 7,
                "hint": 8,
            },
        ),
        ("SyncEntriesRequest", {"since_revision": 1}),
        ("SyncEntriesResponse", {"entries": 1, "tombstones": 2, "revision": 3, "full": 4}),
        ("X509SVIDRequest", {"entry_id": 1, "csr": 2}),
        ("X509SVIDResult", {"entry_id": 1, "cert_chain": 2, "status": 3}),
        ("NewJWTSVIDRequest", {"entry_id": 1, "spiffe_id": 2, "audiences": 3}),
        ("NewJWTSVIDResponse", {"token": 1, "expires_at": 2, "spiffe_id": 3}),
        ("GetBundleRequest", {"acknowledged_bundle_version": 1, "known_state": 2}),
        (
            "GetBundleResponse",
            {
                "trust_domain": 1,
                "spiffe_bundle_json": 2,
                "crls": 3,
                "bundle_version": 4,
                "state": 5,
                "unchanged": 6,
            },
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_message_fields_keep_their_numbers(message: str, fields: dict[str, int]) -> None:
    descriptor = pb.DESCRIPTOR.message_types_by_name[message]
    assert {f.name: f.number for f in descriptor.fields} == fields
