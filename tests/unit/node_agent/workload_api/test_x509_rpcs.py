"""FetchX509SVID and FetchX509Bundles over a real socket, attested as this (root) process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from citadel._proto import workload_pb2
from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import ManualClock
from citadel.identity.keys import load_private_key_der, public_keys_equal
from citadel.identity.pem import load_certificate_der
from tests.fixtures.pki import Pki
from tests.unit.node_agent.workload_api.fakes import FakeIdentitySource, make_entry, svid_material
from tests.unit.node_agent.workload_api.harness import (
    HEADER,
    channel_to,
    read_next,
    running_server,
    stub_for,
)

ROOT_UID = "unix:uid:0"  # the tests run as root: that is how this process is attested
WEB = "spiffe://example.org/ns/default/sa/web"
API = "spiffe://example.org/ns/default/sa/api"

Scenario = Callable[[Any], Awaitable[None]]


def serve(source: FakeIdentitySource, clock: ManualClock, scenario: Scenario) -> None:
    async def main() -> None:
        async with running_server(source, clock=clock) as server, channel_to(server) as channel:
            await scenario(stub_for(channel))

    asyncio.run(main())


async def stream_error(call: Any) -> grpc.aio.AioRpcError:
    """Read a stream until it fails; the test fails if it ends cleanly or hangs."""
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async with asyncio.timeout(5):
            while True:
                if await call.read() is grpc.aio.EOF:
                    break
    return info.value


def der(cert: Any) -> bytes:
    return bytes(cert.public_bytes(Encoding.DER))


def test_x509_svid_carries_leaf_first_chain_pkcs8_key_and_own_bundle(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki, foreign_pki: Pki
) -> None:
    entry = make_entry("web", WEB, ROOT_UID)
    material = svid_material(td_pki, entry.spiffe_id)
    source.put(entry, material)
    source.set_crls([b"crl-der-1"])

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        response = await read_next(call)
        call.cancel()
        (svid,) = response.svids
        assert svid.spiffe_id == WEB
        assert svid.x509_svid == material.chain_der[0] + der(td_pki.intermediate)
        assert load_certificate_der(material.chain_der[0]).serial_number == int(
            material.serial_hex, 16
        )
        key = load_private_key_der(svid.x509_svid_key)
        leaf_key = load_certificate_der(material.chain_der[0]).public_key()
        assert isinstance(leaf_key, ec.EllipticCurvePublicKey)
        assert public_keys_equal(key, leaf_key)
        assert svid.bundle == der(td_pki.root)
        assert dict(response.federated_bundles) == {"spiffe://partner.org": der(foreign_pki.root)}
        assert list(response.crl) == [b"crl-der-1"]

    serve(source, clock, scenario)


def test_every_matching_identity_is_returned_default_first(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki
) -> None:
    for entry in (
        make_entry("web", WEB, ROOT_UID, hint="internal"),
        make_entry("api", API, ROOT_UID, "unix:gid:0", hint="external"),
        make_entry("other", "spiffe://example.org/other", "unix:uid:4242"),
    ):
        source.put(entry, svid_material(td_pki, entry.spiffe_id))

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        response = await read_next(call)
        call.cancel()
        assert [(s.spiffe_id, s.hint) for s in response.svids] == [
            (WEB, "internal"),
            (API, "external"),
        ]

    serve(source, clock, scenario)


def test_stream_pushes_again_when_the_svid_rotates(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki
) -> None:
    entry = make_entry("web", WEB, ROOT_UID)
    first = svid_material(td_pki, entry.spiffe_id)
    second = svid_material(td_pki, entry.spiffe_id)
    source.put(entry, first)

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        initial = await read_next(call)
        source.put(entry, second)
        rotated = await read_next(call)
        call.cancel()
        assert initial.svids[0].x509_svid.startswith(first.chain_der[0])
        assert rotated.svids[0].x509_svid.startswith(second.chain_der[0])

    serve(source, clock, scenario)


def test_stream_pushes_when_an_entry_is_added(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki
) -> None:
    web = make_entry("web", WEB, ROOT_UID)
    source.put(web, svid_material(td_pki, web.spiffe_id))

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        await read_next(call)
        api = make_entry("api", API, ROOT_UID)
        source.put(api, svid_material(td_pki, api.spiffe_id))
        update = await read_next(call)
        call.cancel()
        assert [s.spiffe_id for s in update.svids] == [WEB, API]

    serve(source, clock, scenario)


def test_deleted_entry_disappears_then_the_stream_ends_with_permission_denied(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki
) -> None:
    for entry in (make_entry("web", WEB, ROOT_UID), make_entry("api", API, ROOT_UID)):
        source.put(entry, svid_material(td_pki, entry.spiffe_id))

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        assert len((await read_next(call)).svids) == 2
        source.remove("web")
        update = await read_next(call)
        assert [s.spiffe_id for s in update.svids] == [API]
        source.remove("api")
        error = await stream_error(call)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.details() == "no identity issued"

    serve(source, clock, scenario)


def test_entitled_caller_waits_for_a_pending_svid_instead_of_being_denied(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki
) -> None:
    entry = make_entry("web", WEB, ROOT_UID)
    source.put(entry, None)

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        pending = asyncio.ensure_future(call.read())
        await asyncio.sleep(0.3)
        assert not pending.done()
        source.put(entry, svid_material(td_pki, entry.spiffe_id))
        response = await asyncio.wait_for(pending, 5)
        call.cancel()
        assert response.svids[0].spiffe_id == WEB

    serve(source, clock, scenario)


def test_unchanged_state_is_not_pushed_twice(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki
) -> None:
    entry = make_entry("web", WEB, ROOT_UID)
    material = svid_material(td_pki, entry.spiffe_id)
    source.put(entry, material)

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        await read_next(call)
        source.put(entry, material)  # a notification without a change
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(call.read(), 0.3)
        call.cancel()

    serve(source, clock, scenario)


def test_closed_stream_unsubscribes_from_the_source(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki
) -> None:
    entry = make_entry("web", WEB, ROOT_UID)
    source.put(entry, svid_material(td_pki, entry.spiffe_id))

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        await read_next(call)
        assert source.subscriber_count == 1
        call.cancel()
        async with asyncio.timeout(5):
            while source.subscriber_count:
                await asyncio.sleep(0.02)

    serve(source, clock, scenario)


def test_x509_bundles_are_keyed_by_trust_domain_id_with_crls(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki, foreign_pki: Pki
) -> None:
    source.put(make_entry("web", WEB, ROOT_UID), None)  # entitled, even before its SVID
    source.set_crls([b"crl-a"])

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509Bundles(workload_pb2.X509BundlesRequest(), metadata=HEADER)
        response = await read_next(call)
        assert dict(response.bundles) == {
            "spiffe://example.org": der(td_pki.root),
            "spiffe://partner.org": der(foreign_pki.root),
        }
        assert list(response.crl) == [b"crl-a"]
        new_root = td_pki.intermediate  # any certificate will do as a second root here
        source.set_bundles(
            [TrustBundle(td_pki.trust_domain, x509_authorities=(td_pki.root, new_root))]
        )
        update = await read_next(call)
        call.cancel()
        assert dict(update.bundles) == {"spiffe://example.org": der(td_pki.root) + der(new_root)}

    serve(source, clock, scenario)


@pytest.mark.parametrize(
    ("method", "request_type"),
    [
        ("FetchX509SVID", workload_pb2.X509SVIDRequest),
        ("FetchX509Bundles", workload_pb2.X509BundlesRequest),
        ("FetchJWTBundles", workload_pb2.JWTBundlesRequest),
    ],
    ids=["x509-svid", "x509-bundles", "jwt-bundles"],
)
def test_unregistered_caller_is_denied_on_every_stream(
    source: FakeIdentitySource, clock: ManualClock, td_pki: Pki, method: str, request_type: Any
) -> None:
    entry = make_entry("web", WEB, "unix:uid:4242")
    source.put(entry, svid_material(td_pki, entry.spiffe_id))

    async def scenario(stub: Any) -> None:
        error = await stream_error(getattr(stub, method)(request_type(), metadata=HEADER))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED

    serve(source, clock, scenario)


def test_jwt_bundles_are_jwks_documents_with_jwt_keys_only(
    source: FakeIdentitySource, clock: ManualClock
) -> None:
    import json

    source.put(make_entry("web", WEB, ROOT_UID), None)

    async def scenario(stub: Any) -> None:
        call = stub.FetchJWTBundles(workload_pb2.JWTBundlesRequest(), metadata=HEADER)
        response = await read_next(call)
        call.cancel()
        own = json.loads(response.bundles["spiffe://example.org"])
        assert [(k["kid"], k["use"], k["kty"]) for k in own["keys"]] == [
            ("jwt-key-1", "jwt-svid", "EC")
        ]
        assert json.loads(response.bundles["spiffe://partner.org"]) == {"keys": []}

    serve(source, clock, scenario)
