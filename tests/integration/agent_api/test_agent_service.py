"""The agent API over real gRPC/TLS against a real CA: who may call it, which entries an agent
gets (incrementally, with tombstones), and batch signing that refuses item by item."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel._proto import citadel_agent_pb2 as pb
from citadel.identity.bundle import TrustBundle
from citadel.identity.chain import verify_svid_chain
from citadel.identity.csr import build_csr
from citadel.identity.jwt_svid import validate_jwt_svid
from citadel.identity.keys import KeyType, generate_private_key
from citadel.identity.spiffe_id import SpiffeId
from node_agent.entries.records import SvidOrder
from node_agent.errors import CaRejectedError
from tests.integration.agent_api.conftest import (
    AGENT,
    OTHER_AGENT,
    TRUST_DOMAIN,
    WORKLOAD,
    AgentCa,
)

pytestmark = pytest.mark.integration

PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED.value[0]
INVALID_ARGUMENT = grpc.StatusCode.INVALID_ARGUMENT.value[0]


def csr_der(spiffe_id: SpiffeId, dns_names: tuple[str, ...] = ()) -> bytes:
    key = generate_private_key(KeyType.EC_P256)
    return build_csr(key, spiffe_id, dns_names=dns_names).public_bytes(Encoding.DER)


# --- who may call ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("SyncEntries", pb.SyncEntriesRequest()),
        ("BatchNewX509SVID", pb.BatchNewX509SVIDRequest()),
        ("NewJWTSVID", pb.NewJWTSVIDRequest(spiffe_id=str(WORKLOAD), audiences=["x"])),
    ],
    ids=["sync", "batch", "jwt"],
)
def test_a_workload_that_is_not_an_agent_is_denied_every_method_but_get_bundle(
    agent_ca: AgentCa, method: str, request_message: object
) -> None:
    stub = agent_ca.raw_stub(agent_ca.identity(WORKLOAD))
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(request_message, timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_caller_without_a_client_certificate_is_denied(agent_ca: AgentCa) -> None:
    stub = agent_ca.raw_stub(None, mtls=False)
    with pytest.raises(grpc.RpcError) as info:
        stub.GetBundle(pb.GetBundleRequest(), timeout=10)
    assert info.value.code() in (
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    )


def test_a_revoked_agent_certificate_is_refused(agent_ca: AgentCa) -> None:
    identity = agent_ca.identity(AGENT)
    client = agent_ca.client(identity)
    assert client.sync_entries(0).revision == 0
    agent_ca.ca.repository.revoke_certificate(
        identity.serial_hex, "keyCompromise", agent_ca.clock.now()
    )
    with pytest.raises(CaRejectedError) as info:
        client.sync_entries(0)
    assert info.value.code == "UNAUTHENTICATED"


# --- entries -------------------------------------------------------------------------------


def test_sync_is_incremental_and_a_deleted_entry_comes_back_as_a_tombstone(
    agent_ca: AgentCa,
) -> None:
    client = agent_ca.client(AGENT)
    web = agent_ca.add_entry("web", "/ns/shop/sa/web", "unix:uid:1000")
    agent_ca.add_entry("db", "/ns/shop/sa/db", "unix:uid:1001")
    first = client.sync_entries(0)
    assert first.full and first.revision == 2
    assert sorted(e.entry_id for e in first.entries) == ["db", "web"]

    agent_ca.ca.repository.update_entry(replace(web, hint="front"), agent_ca.clock.now())
    second = client.sync_entries(first.revision)
    assert not second.full
    assert [(e.entry_id, e.hint) for e in second.entries] == [("web", "front")]
    assert second.tombstones == ()

    agent_ca.ca.repository.delete_entry("db", agent_ca.clock.now())
    third = client.sync_entries(second.revision)
    assert third.entries == () and third.tombstones == (("db", 4),)
    assert client.sync_entries(third.revision).entries == ()


def test_an_agent_gets_its_descendants_and_never_another_agents_entries(
    agent_ca: AgentCa,
) -> None:
    web = agent_ca.add_entry("web", "/ns/shop/sa/web")
    agent_ca.add_entry("sidecar", "/ns/shop/sa/sidecar", "unix:uid:7", parent=web.spiffe_id)
    agent_ca.add_entry("theirs", "/ns/shop/sa/theirs", parent=OTHER_AGENT)
    mine = client_entries(agent_ca, AGENT)
    theirs = client_entries(agent_ca, OTHER_AGENT)
    assert mine == ["sidecar", "web"]
    assert theirs == ["theirs"]


def client_entries(agent_ca: AgentCa, agent: SpiffeId) -> list[str]:
    return sorted(e.entry_id for e in agent_ca.client(agent).sync_entries(0).entries)


def test_a_grandchild_follows_its_parent_entry_to_another_agent(agent_ca: AgentCa) -> None:
    web = agent_ca.add_entry("web", "/ns/shop/sa/web")
    agent_ca.add_entry("sidecar", "/ns/shop/sa/sidecar", "unix:uid:7", parent=web.spiffe_id)
    mine, theirs = agent_ca.client(AGENT), agent_ca.client(OTHER_AGENT)
    mine_at, theirs_at = mine.sync_entries(0).revision, theirs.sync_entries(0).revision
    agent_ca.ca.repository.update_entry(replace(web, parent_id=OTHER_AGENT), agent_ca.clock.now())
    lost = mine.sync_entries(mine_at)
    gained = theirs.sync_entries(theirs_at)
    assert sorted(entry_id for entry_id, _ in lost.tombstones) == ["sidecar", "web"]
    assert sorted(e.entry_id for e in gained.entries) == ["sidecar", "web"]


def test_an_agent_ahead_of_the_store_gets_the_full_set(agent_ca: AgentCa) -> None:
    agent_ca.add_entry("web", "/ns/shop/sa/web")
    answer = agent_ca.client(AGENT).sync_entries(99)
    assert answer.full and [e.entry_id for e in answer.entries] == ["web"]


# --- batch signing --------------------------------------------------------------------------


def test_batch_signs_authorized_items_and_refuses_the_others_item_by_item(
    agent_ca: AgentCa,
) -> None:
    web = agent_ca.add_entry(
        "web", "/ns/shop/sa/web", ttl=timedelta(minutes=30), dns_names=("web.shop.svc",)
    )
    db = agent_ca.add_entry("db", "/ns/shop/sa/db", "unix:uid:1001")
    theirs = agent_ca.add_entry("theirs", "/ns/shop/sa/theirs", parent=OTHER_AGENT)
    client = agent_ca.client(AGENT)  # issues the agent's own certificate
    before = agent_ca.issuance_count()
    answers = client.batch_new_x509_svid(
        [
            SvidOrder("web", csr_der(web.spiffe_id)),
            SvidOrder("theirs", csr_der(theirs.spiffe_id)),
            SvidOrder("db", csr_der(db.spiffe_id)),
            SvidOrder("no-such-entry", csr_der(web.spiffe_id)),
        ]
    )
    assert [(a.entry_id, a.code) for a in answers] == [
        ("web", 0),
        ("theirs", PERMISSION_DENIED),
        ("db", 0),
        ("no-such-entry", PERMISSION_DENIED),
    ]
    assert answers[1].chain_der == () and answers[3].chain_der == ()
    assert agent_ca.issuance_count() - before == 2  # nothing issued for the refused items
    leaf, *intermediates = [x509.load_der_x509_certificate(d) for d in answers[0].chain_der]
    roots = agent_ca.ca.issuer.trust_bundle().x509_authorities
    at = agent_ca.clock.now()
    assert verify_svid_chain(leaf, intermediates, roots, at=at) == web.spiffe_id
    assert leaf.not_valid_after_utc - at <= timedelta(minutes=30)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web.shop.svc"]
    record = agent_ca.ca.repository.get_certificate(format(leaf.serial_number, "x"))
    assert record.requester == f"agent:{AGENT}"
    assert record.metadata["entry_id"] == "web"


@pytest.mark.parametrize(
    ("csr_for", "dns_names", "code"),
    [
        ("spiffe://cluster.local/ns/shop/sa/admin", (), PERMISSION_DENIED),
        ("spiffe://cluster.local/ns/shop/sa/web", ("evil.example",), PERMISSION_DENIED),
        (None, (), INVALID_ARGUMENT),
    ],
    ids=["csr-for-another-id", "csr-with-foreign-dns-name", "garbage-csr"],
)
def test_a_csr_that_does_not_fit_its_entry_is_refused_for_that_item(
    agent_ca: AgentCa, csr_for: str | None, dns_names: tuple[str, ...], code: int
) -> None:
    agent_ca.add_entry("web", "/ns/shop/sa/web")
    client = agent_ca.client(AGENT)
    before = agent_ca.issuance_count()
    csr = csr_der(SpiffeId.parse(csr_for), dns_names) if csr_for else b"\x30\x03\x02\x01\x00"
    [answer] = client.batch_new_x509_svid([SvidOrder("web", csr)])
    assert (answer.code, answer.chain_der) == (code, ())
    assert agent_ca.issuance_count() == before


@pytest.mark.parametrize("count", [0, 257], ids=["empty", "over-the-limit"])
def test_a_batch_without_items_or_over_the_limit_is_invalid(agent_ca: AgentCa, count: int) -> None:
    agent_ca.add_entry("web", "/ns/shop/sa/web")
    csr = csr_der(TRUST_DOMAIN.spiffe_id("/ns/shop/sa/web"))
    with pytest.raises(CaRejectedError) as info:
        agent_ca.client(AGENT).batch_new_x509_svid([SvidOrder("web", csr)] * count)
    assert info.value.code == "INVALID_ARGUMENT"


def test_an_entry_ttl_above_the_ca_maximum_is_refused_for_that_item(agent_ca: AgentCa) -> None:
    agent_ca.add_entry("web", "/ns/shop/sa/web", ttl=timedelta(days=365))
    csr = csr_der(TRUST_DOMAIN.spiffe_id("/ns/shop/sa/web"))
    [answer] = agent_ca.client(AGENT).batch_new_x509_svid([SvidOrder("web", csr)])
    assert answer.code == INVALID_ARGUMENT and "lifetime" in answer.message


# --- JWT-SVIDs and the bundle ---------------------------------------------------------------


def test_jwt_svid_is_minted_for_an_authorized_entry_and_validates_with_the_bundle(
    agent_ca: AgentCa,
) -> None:
    web = agent_ca.add_entry("web", "/ns/shop/sa/web")
    client = agent_ca.client(AGENT)
    jwt = client.new_jwt_svid("web", web.spiffe_id, ["billing"])
    bundle = client.get_bundle(TRUST_DOMAIN).bundle
    svid = validate_jwt_svid(jwt.token, "billing", bundle.jwt_authorities, now=agent_ca.clock.now())
    assert svid.spiffe_id == web.spiffe_id
    assert jwt.expires_at - agent_ca.clock.now() <= timedelta(minutes=5)


@pytest.mark.parametrize(
    ("entry_id", "spiffe_id"),
    [
        ("theirs", "spiffe://cluster.local/ns/shop/sa/theirs"),
        ("", "spiffe://cluster.local/ns/shop/sa/theirs"),
        ("web", "spiffe://cluster.local/ns/shop/sa/theirs"),
    ],
    ids=["other-agents-entry", "other-agents-spiffe-id", "own-entry-other-id"],
)
def test_an_agent_cannot_get_a_jwt_svid_for_an_identity_it_is_not_authorized_for(
    agent_ca: AgentCa, entry_id: str, spiffe_id: str
) -> None:
    agent_ca.add_entry("web", "/ns/shop/sa/web")
    agent_ca.add_entry("theirs", "/ns/shop/sa/theirs", parent=OTHER_AGENT)
    stub = agent_ca.raw_stub(agent_ca.identity(AGENT))
    request = pb.NewJWTSVIDRequest(entry_id=entry_id, spiffe_id=spiffe_id, audiences=["x"])
    with pytest.raises(grpc.RpcError) as info:
        stub.NewJWTSVID(request, timeout=10)
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_the_bundle_holds_the_roots_and_the_jwt_keys(agent_ca: AgentCa) -> None:
    update = agent_ca.client(AGENT).get_bundle(TRUST_DOMAIN)
    assert update.bundle.x509_authorities == agent_ca.ca.issuer.trust_bundle().x509_authorities
    assert [a.key_id for a in update.bundle.jwt_authorities] == [
        a.key_id for a in agent_ca.server.agent_api.jwt_keys.authorities()
    ]
    assert len(update.bundle.jwt_authorities) == 1
    document = TrustBundle.from_spiffe_json(TRUST_DOMAIN, update.bundle.to_spiffe_json())
    assert document.jwt_authorities == update.bundle.jwt_authorities


def test_entries_managed_with_the_cli_reach_the_agent_through_the_running_ca(
    agent_ca: AgentCa,
) -> None:
    from tests.unit.cli.cli_testkit import assert_fails, assert_ok, run

    client = agent_ca.client(AGENT)
    at = client.sync_entries(0).revision
    assert_ok(
        run(
            agent_ca.data_dir, "entry", "create", "--entry-id", "web", "--parent", str(AGENT),
            "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/web", "--selector", "unix:uid:1000",
        )
    )  # fmt: skip
    assert_fails(
        run(
            agent_ca.data_dir, "entry", "create", "--parent", str(AGENT),
            "--spiffe-id", "spiffe://cluster.local/ns/shop/sa/web", "--selector", "unix:uid:1000",
        ),
        1,
        "already maps",
    )  # fmt: skip
    created = client.sync_entries(at)
    assert [e.entry_id for e in created.entries] == ["web"]
    assert_ok(run(agent_ca.data_dir, "entry", "update", "web", "--hint", "front"))
    assert_ok(run(agent_ca.data_dir, "entry", "delete", "web"))
    changes = client.sync_entries(created.revision)
    assert changes.entries == () and [t[0] for t in changes.tombstones] == ["web"]
    assert changes.revision == created.revision + 2


# --- hostile input ----------------------------------------------------------------------------


def test_hostile_batch_items_are_refused_one_by_one_without_harm(agent_ca: AgentCa) -> None:
    web = agent_ca.add_entry("web", "/ns/shop/sa/web")
    client = agent_ca.client(AGENT)
    before = agent_ca.issuance_count()
    answers = client.batch_new_x509_svid(
        [
            SvidOrder("x" * 10_000, csr_der(web.spiffe_id)),
            SvidOrder("web\x00", csr_der(web.spiffe_id)),
            SvidOrder("web", b""),
            SvidOrder("web", b"\xff" * 70_000),
            SvidOrder("web", csr_der(web.spiffe_id)),
        ]
    )
    assert [a.code for a in answers] == [
        PERMISSION_DENIED,
        PERMISSION_DENIED,
        INVALID_ARGUMENT,
        INVALID_ARGUMENT,
        0,
    ]
    assert all("Traceback" not in a.message for a in answers)
    assert agent_ca.issuance_count() - before == 1


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("SyncEntries", pb.SyncEntriesRequest(since_revision=-5)),
        ("NewJWTSVID", pb.NewJWTSVIDRequest(entry_id="web", audiences=[])),
        (
            "NewJWTSVID",
            pb.NewJWTSVIDRequest(entry_id="web", audiences=[f"a{i}" for i in range(100)]),
        ),
        ("NewJWTSVID", pb.NewJWTSVIDRequest(entry_id="web", audiences=["x" * 5000])),
        ("NewJWTSVID", pb.NewJWTSVIDRequest(audiences=["a"])),
        ("NewJWTSVID", pb.NewJWTSVIDRequest(spiffe_id="not a spiffe id", audiences=["a"])),
    ],
    ids=[
        "negative-revision",
        "jwt-without-audience",
        "jwt-with-too-many-audiences",
        "jwt-with-huge-audience",
        "jwt-without-entry-or-id",
        "jwt-with-bad-spiffe-id",
    ],
)
def test_malformed_requests_are_invalid_argument(
    agent_ca: AgentCa, method: str, request_message: object
) -> None:
    agent_ca.add_entry("web", "/ns/shop/sa/web")
    stub = agent_ca.raw_stub(agent_ca.identity(AGENT))
    with pytest.raises(grpc.RpcError) as info:
        getattr(stub, method)(request_message, timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()


def test_a_request_over_the_size_limit_is_refused_and_the_server_keeps_serving(
    agent_ca: AgentCa,
) -> None:
    stub = agent_ca.raw_stub(agent_ca.identity(AGENT))
    huge = pb.BatchNewX509SVIDRequest(
        requests=[pb.X509SVIDRequest(entry_id="web", csr=b"\x00" * 60_000)] * 10
    )
    with pytest.raises(grpc.RpcError) as info:
        stub.BatchNewX509SVID(huge, timeout=10)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stub.GetBundle(pb.GetBundleRequest(), timeout=10).trust_domain == "cluster.local"
