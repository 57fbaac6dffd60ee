"""A NACK from a real Envoy is answered by re-pushing the last good secret.

The agent's own validation keeps bad secrets from Envoy, so to make Envoy NACK this test
serves SDS in process with the push gate *bypassed*, then publishes a certificate with the
wrong key. Certificates come from the real CA's ``citadel cert mint``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from citadel.identity.clock import SystemClock
from node_agent.metrics import AgentMetrics
from node_agent.sds.catalog import PushGate, SecretCatalog
from node_agent.sds.server import SdsServer
from node_agent.sds.stream_base import StreamContext
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import (
    SecretValidator,
    load_tls_secret,
    load_trust_bundle_secret,
)
from node_agent.secrets import Secret, TlsCertificateSecret
from tests.integration.node_agent.mesh import handshake, wait_for
from tests.peers.citadel_server import CitadelServer
from tests.peers.envoy import EnvoyProcess, adapt_for_test, envoy_binary, load_example

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SERVER_ID = "spiffe://example.org/ns/default/sa/server"
CLIENT_ID = "spiffe://example.org/ns/default/sa/client"


class _AcceptEverything(PushGate):
    """The test's bypass of the push gate: lets a bad secret through to Envoy."""

    def allows(self, secret: Secret) -> bool:
        return True


@dataclass
class Rig:
    base: Path
    cache: SecretCache
    metrics: AgentMetrics
    envoy: EnvoyProcess
    port: int
    roots: Path
    client: tuple[Path, Path]

    def serial(self) -> str:
        return handshake(self.port, roots=self.roots, client_cert=self.client).serial_hex


def _tls(minted: Path) -> TlsCertificateSecret:
    return load_tls_secret(
        "default", (minted / "cert-chain.pem").read_bytes(), (minted / "key.pem").read_bytes()
    )


@pytest.fixture
def rig() -> Iterator[Rig]:
    envoy_binary()
    base = Path(tempfile.mkdtemp(prefix="na-nack-", dir="/tmp"))
    ca = CitadelServer(data_dir=base / "ca", trust_domain="example.org", workdir=base)
    ca.cli("init")
    ca.mint(CLIENT_ID, base / "client")
    clock = SystemClock()
    cache = SecretCache(clock)
    metrics = AgentMetrics()
    context = StreamContext(
        cache=cache,
        catalog=SecretCatalog(None),
        gate=_AcceptEverything(SecretValidator(), clock, metrics),
        metrics=metrics,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = SdsServer(base / "sds.sock", context)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    envoy: EnvoyProcess | None = None
    try:
        roots = base / "client" / "root-cert.pem"
        cache.publish(load_trust_bundle_secret("ROOTCA", roots.read_bytes()))
        cache.publish(_tls(ca.mint(SERVER_ID, base / "good")))
        document = adapt_for_test(load_example("server-sidecar.yaml"), sds_socket=base / "sds.sock")
        envoy = EnvoyProcess(document, base / "envoy", "nack-envoy").start()
        yield Rig(
            base,
            cache,
            metrics,
            envoy,
            envoy.listener_port("inbound_mtls"),
            roots,
            (base / "client" / "cert-chain.pem", base / "client" / "key.pem"),
        )
    finally:
        if envoy is not None:
            envoy.stop()
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        shutil.rmtree(base, ignore_errors=True)


def test_envoy_nack_is_followed_by_the_last_good_secret_under_a_new_version(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    good = rig.cache.get("default")
    assert good is not None and isinstance(good.secret, TlsCertificateSecret)
    assert wait_for(lambda: rig.serial() == good.secret.serial_hex, timeout=10)
    versions_before = rig.envoy.stat("sds.default.version")

    other = _tls(_mint(rig, "other"))
    bad = TlsCertificateSecret(  # someone else's certificate with our key: Envoy must NACK
        name="default",
        cert_chain_pem=other.cert_chain_pem,
        private_key_pem=good.secret.private_key_pem,
        spiffe_id=other.spiffe_id,
        serial_hex=other.serial_hex,
        not_before=other.not_before,
        not_after=other.not_after,
    )
    with caplog.at_level(logging.WARNING, logger="node_agent"):
        rig.cache.publish(bad)
        assert wait_for(lambda: rig.envoy.stat("sds.default.update_rejected") == 1, timeout=10)
        # ...and the agent answers with the last good secret, which Envoy accepts.
        assert wait_for(lambda: rig.envoy.stat("sds.default.update_success") >= 2, timeout=10)
    assert (
        rig.metrics.registry.get_sample_value("citadel_agent_sds_nacks_total", {"api": "sotw"}) == 1
    )
    assert "Envoy rejected (NACK)" in caplog.text
    assert rig.envoy.stat("sds.default.version") != versions_before  # a new version
    assert rig.envoy.stat("sds.default.update_rejected") == 1  # the bad one was not resent
    assert rig.serial() == good.secret.serial_hex

    # Envoy latched nothing bad: a change of the *other* secret still rebuilds cleanly.
    bundle = rig.roots.read_bytes()
    rig.cache.publish(load_trust_bundle_secret("ROOTCA", bundle + bundle))
    assert wait_for(lambda: rig.envoy.stat("sds.ROOTCA.update_success") >= 2, timeout=10)
    assert rig.envoy.stat("sds.ROOTCA.update_rejected") == 0
    assert rig.serial() == good.secret.serial_hex

    # And the next good certificate goes through.
    fresh = _tls(_mint(rig, "fresh"))
    rig.cache.publish(fresh)
    assert wait_for(lambda: rig.serial() == fresh.serial_hex, timeout=10)


def _mint(rig: Rig, name: str) -> Path:
    ca = CitadelServer(data_dir=rig.base / "ca", trust_domain="example.org", workdir=rig.base)
    return ca.mint(SERVER_ID, rig.base / name)
