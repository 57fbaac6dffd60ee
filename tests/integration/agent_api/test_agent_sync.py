"""The agent's sync loop against the real CA: it waits for its own certificate, keeps what it
has through an outage, and backs off with the agent's backoff maths while the CA is down."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from citadel.identity.clock import ManualClock
from node_agent.agent_api_channel import AgentApiEndpoint
from node_agent.entries.service import EntryIdentityService, EntrySettings
from node_agent.errors import CaUnreachableError, CredentialError
from node_agent.rotation import BackoffPolicy, backoff_delay
from node_agent.scheduler import Scheduler
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import load_tls_secret, load_trust_bundle_secret
from tests.integration.agent_api.conftest import AGENT, AgentCa

pytestmark = pytest.mark.integration

SEED = 11


def build(agent_ca: AgentCa, cache: SecretCache, scheduler: Scheduler) -> EntryIdentityService:
    return EntryIdentityService(
        agent_id=AGENT,
        endpoint=AgentApiEndpoint(
            address=f"127.0.0.1:{agent_ca.mtls_port}",
            server_name="localhost",
            timeout=timedelta(seconds=3),
        ),
        cache=cache,
        scheduler=scheduler,
        clock=agent_ca.clock,
        settings=EntrySettings(sync_interval=timedelta(seconds=5)),
        rng=random.Random(SEED),
    )


def own_certificate(agent_ca: AgentCa, cache: SecretCache) -> None:
    identity = agent_ca.identity(AGENT, ttl=timedelta(hours=2))
    cache.publish(
        load_tls_secret("default", identity.material.chain_pem, identity.material.key_pem)
    )


def test_the_first_sync_waits_for_the_agents_own_certificate_then_starts_at_once(
    agent_ca: AgentCa,
) -> None:
    agent_ca.add_entry("web", "/ns/shop/sa/web")
    cache = SecretCache(agent_ca.clock)
    cache.publish(load_trust_bundle_secret("ROOTCA", agent_ca.roots_pem))
    scheduler = Scheduler(agent_ca.clock)
    service = build(agent_ca, cache, scheduler)
    service.sync.start()
    scheduler.run_due()
    assert isinstance(service.sync.last_error, CredentialError)
    own_certificate(agent_ca, cache)  # the rotator publishes the agent's certificate
    assert scheduler.due_at(service.sync.TASK) == agent_ca.clock.now()
    scheduler.run_due()
    assert [e.entry_id for e in service.entries.entries()] == ["web"]
    assert service.svids.current("web") is not None


def test_an_outage_keeps_the_entries_and_retries_with_backoff(agent_ca: AgentCa) -> None:
    agent_ca.add_entry("web", "/ns/shop/sa/web")
    clock: ManualClock = agent_ca.clock
    cache = SecretCache(clock)
    cache.publish(load_trust_bundle_secret("ROOTCA", agent_ca.roots_pem))
    own_certificate(agent_ca, cache)
    scheduler = Scheduler(clock)
    service = build(agent_ca, cache, scheduler)
    service.sync.start()
    while scheduler.run_due():
        pass
    revision = service.entries.revision
    svid = service.svids.current("web")
    assert svid is not None and service.sync.next_sync == clock.now() + timedelta(seconds=5)

    agent_ca.server.stop(timedelta(seconds=0))
    clock.advance(timedelta(seconds=5))
    scheduler.run_due()
    assert isinstance(service.sync.last_error, CaUnreachableError)
    assert service.entries.revision == revision
    assert service.svids.current("web") == svid
    # The rng was drawn once for the SVID's rotate_at, then once for this backoff.
    draws = random.Random(SEED)
    draws.uniform(-1.0, 1.0)
    expected = backoff_delay(0, BackoffPolicy(), draws.uniform(-1.0, 1.0))
    assert service.sync.next_sync == clock.now() + expected
    service.client.close()
