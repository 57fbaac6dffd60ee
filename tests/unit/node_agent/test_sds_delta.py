from __future__ import annotations

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem
from node_agent.errors import SdsRequestError
from node_agent.sds.delta import DeltaStream
from node_agent.secrets import TlsCertificateSecret, TrustBundleSecret
from tests.unit.node_agent.conftest import MakeTls
from tests.unit.node_agent.sds_helpers import delta_request, make_harness, unpack


def test_subscribe_gets_each_resource_with_its_own_version(
    clock: ManualClock, make_tls: MakeTls, root_secret: TrustBundleSecret
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    h.cache.publish(root_secret)
    stream = DeltaStream(h.ctx, h.watch)
    [response] = stream.on_request(delta_request(("default", "ROOTCA")))
    names = {r.name for r in response.resources}
    assert names == {"default", "ROOTCA"}
    assert len({r.version for r in response.resources}) == 2
    assert response.nonce


def test_rotation_sends_only_the_changed_resource(
    clock: ManualClock, make_tls: MakeTls, root_secret: TrustBundleSecret
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    h.cache.publish(root_secret)
    stream = DeltaStream(h.ctx, h.watch)
    [first] = stream.on_request(delta_request(("default", "ROOTCA")))
    stream.on_request(delta_request(nonce=first.nonce))
    h.cache.publish(make_tls())
    [update] = stream.on_change("default")
    assert [r.name for r in update.resources] == ["default"]
    assert update.nonce != first.nonce


def test_delta_nack_repushes_the_last_acked_secret(clock: ManualClock, make_tls: MakeTls) -> None:
    h = make_harness(clock)
    h.ctx.gate.allows = lambda secret: True  # type: ignore[method-assign]
    good = make_tls()
    h.cache.publish(good)
    stream = DeltaStream(h.ctx, h.watch)
    [first] = stream.on_request(delta_request(("default",)))
    stream.on_request(delta_request(nonce=first.nonce))
    fresh = make_tls()
    bad = TlsCertificateSecret(
        name="default",
        cert_chain_pem=fresh.cert_chain_pem,
        private_key_pem=private_key_to_pkcs8_pem(generate_private_key()),
        spiffe_id=fresh.spiffe_id,
        serial_hex=fresh.serial_hex,
        not_before=fresh.not_before,
        not_after=fresh.not_after,
    )
    h.cache.publish(bad)
    [pushed] = stream.on_change("default")
    [repush] = stream.on_request(delta_request(nonce=pushed.nonce, error="key mismatch"))
    assert h.count("citadel_agent_sds_nacks_total", "delta") == 1
    resource = repush.resources[0]
    assert resource.version not in (first.resources[0].version, pushed.resources[0].version)
    assert unpack(resource.resource).tls_certificate.private_key.inline_bytes == (
        good.private_key_pem
    )
    assert stream.on_change("default") == []


def test_reconnect_with_initial_versions_gets_the_current_secret(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = DeltaStream(h.ctx, h.watch)
    [response] = stream.on_request(delta_request(initial={"default": "12"}))
    assert [r.name for r in response.resources] == ["default"]


def test_unsubscribe_stops_pushes(clock: ManualClock, make_tls: MakeTls) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = DeltaStream(h.ctx, h.watch)
    [first] = stream.on_request(delta_request(("default",)))
    stream.on_request(delta_request(unsubscribe=("default",), nonce=first.nonce))
    h.cache.publish(make_tls())
    assert stream.on_change("default") == []
    assert h.cache.subscriber_count() == 0


def test_delta_unknown_name_is_counted_and_the_stream_kept(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = DeltaStream(h.ctx, h.watch)
    assert stream.on_request(delta_request(("bogus",))) == []
    assert h.count("citadel_agent_sds_unknown_resources_total", "delta") == 1
    [response] = stream.on_request(delta_request(("default",)))
    assert [r.name for r in response.resources] == ["default"]


def test_delta_first_request_without_node_is_refused(clock: ManualClock) -> None:
    h = make_harness(clock)
    with pytest.raises(SdsRequestError, match="node"):
        DeltaStream(h.ctx, h.watch).on_request(delta_request(("default",), node=False))


def test_delta_subscriptions_beyond_the_limit_are_refused(clock: ManualClock) -> None:
    h = make_harness(clock)
    stream = DeltaStream(h.ctx, h.watch)
    stream.on_request(delta_request(tuple(f"a-{i}" for i in range(40))))
    with pytest.raises(SdsRequestError, match="at most 64 resources"):
        stream.on_request(delta_request(tuple(f"b-{i}" for i in range(40))))
