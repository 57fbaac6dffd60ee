from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem
from node_agent.errors import SdsRequestError
from node_agent.sds.sotw import SotwStream
from node_agent.secrets import TlsCertificateSecret, TrustBundleSecret
from tests.unit.node_agent.conftest import MakeTls
from tests.unit.node_agent.sds_helpers import make_harness, sotw_request, unpack


def _serial_of(response: object) -> bytes:
    secret = unpack(response.resources[0])  # type: ignore[attr-defined]
    return bytes(secret.tls_certificate.certificate_chain.inline_bytes)


def _mismatched(good: TlsCertificateSecret) -> TlsCertificateSecret:
    """Same certificate, someone else's key: Envoy would NACK it."""
    return TlsCertificateSecret(
        name=good.name,
        cert_chain_pem=good.cert_chain_pem,
        private_key_pem=private_key_to_pkcs8_pem(generate_private_key()),
        spiffe_id=good.spiffe_id,
        serial_hex=good.serial_hex,
        not_before=good.not_before,
        not_after=good.not_after,
    )


def test_first_request_gets_the_current_secret(clock: ManualClock, make_tls: MakeTls) -> None:
    h = make_harness(clock)
    secret = make_tls()
    h.cache.publish(secret)
    stream = SotwStream(h.ctx, h.watch)
    [response] = stream.on_request(sotw_request("default"))
    assert response.version_info and response.nonce
    envoy_secret = unpack(response.resources[0])
    assert envoy_secret.name == "default"
    assert envoy_secret.tls_certificate.certificate_chain.inline_bytes == secret.cert_chain_pem
    assert envoy_secret.tls_certificate.private_key.inline_bytes == secret.private_key_pem


def test_rootca_is_served_as_a_validation_context(
    clock: ManualClock, root_secret: TrustBundleSecret
) -> None:
    h = make_harness(clock)
    h.cache.publish(root_secret)
    [response] = SotwStream(h.ctx, h.watch).on_request(sotw_request("ROOTCA"))
    envoy_secret = unpack(response.resources[0])
    assert envoy_secret.validation_context.trusted_ca.inline_bytes == root_secret.trusted_ca_pem


def test_secret_not_yet_available_is_pushed_when_it_arrives(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    stream = SotwStream(h.ctx, h.watch)
    assert stream.on_request(sotw_request("default")) == []
    h.cache.publish(make_tls())
    assert h.notified == ["default"]
    [response] = stream.on_change("default")
    assert unpack(response.resources[0]).name == "default"


def test_ack_echoes_and_rotation_pushes_a_new_version_and_nonce(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = SotwStream(h.ctx, h.watch)
    [first] = stream.on_request(sotw_request("default"))
    ack = sotw_request("default", version=first.version_info, nonce=first.nonce)
    assert stream.on_request(ack) == []
    h.cache.publish(make_tls())
    [second] = stream.on_change("default")
    assert second.version_info != first.version_info
    assert second.nonce != first.nonce
    assert _serial_of(second) != _serial_of(first)


def test_nack_repushes_the_last_good_secret_under_a_new_version(
    clock: ManualClock, make_tls: MakeTls, caplog: pytest.LogCaptureFixture
) -> None:
    """The push gate is bypassed here to model a secret Envoy rejects for its own reasons."""
    h = make_harness(clock)
    h.ctx.gate.allows = lambda secret: True  # type: ignore[method-assign]
    good = make_tls()
    h.cache.publish(good)
    stream = SotwStream(h.ctx, h.watch)
    [first] = stream.on_request(sotw_request("default"))
    stream.on_request(sotw_request("default", version=first.version_info, nonce=first.nonce))
    bad = _mismatched(make_tls())
    h.cache.publish(bad)
    [pushed_bad] = stream.on_change("default")
    nack = sotw_request(
        "default", version=first.version_info, nonce=pushed_bad.nonce, error="key mismatch"
    )
    with caplog.at_level(logging.WARNING):
        [repush] = stream.on_request(nack)
    assert "key mismatch" in caplog.text
    assert h.count("citadel_agent_sds_nacks_total", "sotw") == 1
    assert repush.version_info not in (first.version_info, pushed_bad.version_info)
    assert unpack(repush.resources[0]).tls_certificate.private_key.inline_bytes == (
        good.private_key_pem
    )
    # Another notification for the same bad content is not sent again.
    assert stream.on_change("default") == []


def test_nack_without_any_good_secret_sends_nothing(clock: ManualClock, make_tls: MakeTls) -> None:
    h = make_harness(clock)
    h.ctx.gate.allows = lambda secret: True  # type: ignore[method-assign]
    h.cache.publish(_mismatched(make_tls()))
    stream = SotwStream(h.ctx, h.watch)
    [bad] = stream.on_request(sotw_request("default"))
    assert stream.on_request(sotw_request("default", nonce=bad.nonce, error="bad key")) == []
    assert stream.on_change("default") == []


def test_invalid_secret_never_reaches_envoy(clock: ManualClock, make_tls: MakeTls) -> None:
    h = make_harness(clock)
    good = make_tls()
    h.cache.publish(good)
    stream = SotwStream(h.ctx, h.watch)
    [first] = stream.on_request(sotw_request("default"))
    stream.on_request(sotw_request("default", version=first.version_info, nonce=first.nonce))
    h.cache.publish(_mismatched(make_tls()))
    assert stream.on_change("default") == []
    sample = h.metrics.registry.get_sample_value(
        "citadel_agent_secrets_rejected_total", {"source": "sds"}
    )
    assert sample is not None and sample >= 1


def test_expired_cached_certificate_is_not_pushed(clock: ManualClock, make_tls: MakeTls) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls(lifetime=timedelta(minutes=5)))
    clock.advance(timedelta(minutes=10))
    assert SotwStream(h.ctx, h.watch).on_request(sotw_request("default")) == []


def test_reconnect_with_last_acked_version_and_empty_nonce_gets_current_secret(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = SotwStream(h.ctx, h.watch)
    [response] = stream.on_request(sotw_request("default", version="17"))
    assert unpack(response.resources[0]).name == "default"
    assert response.version_info != "17"


def test_stale_nonce_is_ignored(clock: ManualClock, make_tls: MakeTls) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = SotwStream(h.ctx, h.watch)
    [first] = stream.on_request(sotw_request("default"))
    h.cache.publish(make_tls())
    [second] = stream.on_change("default")
    # A NACK that refers to the older response must not mark the newer content as bad.
    assert stream.on_request(sotw_request("default", nonce=first.nonce, error="old")) == []
    assert h.count("citadel_agent_sds_nacks_total", "sotw") == 0
    assert stream.on_request(sotw_request("default", nonce=second.nonce)) == []


def test_unknown_resource_name_is_logged_counted_and_the_stream_kept(
    clock: ManualClock, make_tls: MakeTls, caplog: pytest.LogCaptureFixture
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = SotwStream(h.ctx, h.watch)
    with caplog.at_level(logging.WARNING):
        assert stream.on_request(sotw_request("no-such-secret")) == []
    assert "unknown SDS resource 'no-such-secret'" in caplog.text
    assert h.count("citadel_agent_sds_unknown_resources_total", "sotw") == 1
    assert stream.unknown == {"no-such-secret"}
    # The same stream can still ask for a real name afterwards.
    [response] = stream.on_request(sotw_request("default"))
    assert unpack(response.resources[0]).name == "default"


def test_first_request_without_node_is_refused(clock: ManualClock) -> None:
    h = make_harness(clock)
    with pytest.raises(SdsRequestError, match="must carry 'node'"):
        SotwStream(h.ctx, h.watch).on_request(sotw_request("default", node=False))


def test_later_requests_may_omit_the_node(clock: ManualClock, make_tls: MakeTls) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = SotwStream(h.ctx, h.watch)
    [first] = stream.on_request(sotw_request("default"))
    assert stream.on_request(sotw_request("default", nonce=first.nonce, node=False)) == []


def test_wrong_type_url_is_refused(clock: ManualClock) -> None:
    h = make_harness(clock)
    request = sotw_request("default")
    request.type_url = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
    with pytest.raises(SdsRequestError, match="type_url"):
        SotwStream(h.ctx, h.watch).on_request(request)


def test_closing_the_stream_unsubscribes(clock: ManualClock) -> None:
    h = make_harness(clock)
    stream = SotwStream(h.ctx, h.watch)
    stream.on_request(sotw_request("default", "ROOTCA"))
    assert h.cache.subscriber_count() == 2
    stream.close()
    assert h.cache.subscriber_count() == 0


def test_request_for_too_many_names_is_refused(clock: ManualClock) -> None:
    h = make_harness(clock)
    names = [f"name-{i}" for i in range(65)]
    with pytest.raises(SdsRequestError, match="at most 64 resources"):
        SotwStream(h.ctx, h.watch).on_request(sotw_request(*names))
    assert h.cache.subscriber_count() == 0


def test_first_request_carrying_a_nonce_from_an_old_stream_still_gets_secrets(
    clock: ManualClock, make_tls: MakeTls
) -> None:
    h = make_harness(clock)
    h.cache.publish(make_tls())
    stream = SotwStream(h.ctx, h.watch)
    [response] = stream.on_request(sotw_request("default", version="9", nonce="n-from-before"))
    assert unpack(response.resources[0]).name == "default"
