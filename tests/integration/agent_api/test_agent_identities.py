"""The agent side against the real CA: entries synced, an SVID per entry obtained in a batch
and verified, served over the Workload API (attested by uid through SO_PEERCRED) and over
SDS resource names; JWT-SVIDs minted by the CA and validated through ValidateJWTSVID,
across a JWT key rotation."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel._proto import workload_pb2
from citadel.identity.chain import verify_svid_chain
from citadel.identity.pem import load_certificates_pem
from node_agent.agent_api_channel import AgentApiEndpoint
from node_agent.entries.service import EntryIdentityService
from node_agent.errors import UnknownResourceError
from node_agent.scheduler import Scheduler
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import load_tls_secret, load_trust_bundle_secret
from node_agent.secrets import TlsCertificateSecret, TrustBundleSecret
from node_agent.workload_api.server import WorkloadApiConfig
from tests.integration.agent_api.conftest import AGENT, OTHER_AGENT, TRUST_DOMAIN, AgentCa
from tests.unit.node_agent.workload_api.harness import (
    HEADER,
    channel_to,
    read_next,
    short_tmp_dir,
    stub_for,
)

pytestmark = pytest.mark.integration

OWN_UID = f"unix:uid:{os.geteuid()}"


@dataclass
class RunningAgent:
    service: EntryIdentityService
    cache: SecretCache
    scheduler: Scheduler
    agent_ca: AgentCa

    def settle(self) -> None:
        """Run whatever is due (sync, then SVID rounds) until nothing is left to do now."""
        for _ in range(10):
            if self.scheduler.run_due() == 0:
                return
        raise AssertionError("the agent's tasks keep running")


@pytest.fixture
def agent(agent_ca: AgentCa) -> Iterator[RunningAgent]:
    identity = agent_ca.identity(AGENT, ttl=timedelta(hours=48))
    cache = SecretCache(agent_ca.clock)
    cache.publish(
        load_tls_secret("default", identity.material.chain_pem, identity.material.key_pem)
    )
    cache.publish(load_trust_bundle_secret("ROOTCA", agent_ca.roots_pem))
    scheduler = Scheduler(agent_ca.clock)  # driven by hand with run_due()
    directory = short_tmp_dir()
    service = EntryIdentityService(
        agent_id=AGENT,
        endpoint=AgentApiEndpoint(
            address=f"127.0.0.1:{agent_ca.mtls_port}", server_name="localhost"
        ),
        cache=cache,
        scheduler=scheduler,
        clock=agent_ca.clock,
        workload_api=WorkloadApiConfig(socket_path=directory / "api" / "workload.sock"),
    )
    try:
        yield RunningAgent(service, cache, scheduler, agent_ca)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run(agent: RunningAgent, scenario: Callable[[Any], Awaitable[None]]) -> None:
    async def main() -> None:
        await agent.service.start()
        try:
            agent.settle()
            assert agent.service.workload_api is not None
            async with channel_to(agent.service.workload_api) as channel:
                await scenario(stub_for(channel))
        finally:
            await agent.service.stop()

    asyncio.run(main())


def test_a_workload_attested_by_uid_gets_the_svid_of_its_entry(agent: RunningAgent) -> None:
    agent_ca = agent.agent_ca
    web = agent_ca.add_entry("web", "/ns/shop/sa/web", OWN_UID, dns_names=("web.shop.svc",))
    agent_ca.add_entry("db", "/ns/shop/sa/db", "unix:uid:4242")
    before = agent_ca.issuance_count()

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        message = await read_next(call)
        call.cancel()
        [svid] = message.svids
        assert svid.spiffe_id == str(web.spiffe_id)
        leaf = x509.load_der_x509_certificate(svid.x509_svid[: _der_length(svid.x509_svid)])
        roots = agent_ca.ca.issuer.trust_bundle().x509_authorities
        intermediates = load_certificates_pem(
            agent_ca.ca.issuer.signer.cert.public_bytes(Encoding.PEM)
        )
        assert (
            verify_svid_chain(leaf, intermediates, roots, at=agent_ca.clock.now()) == web.spiffe_id
        )

    run(agent, scenario)
    assert agent_ca.issuance_count() - before == 2  # both entries, one batch
    assert agent.service.svids.refused == 0


def test_an_entry_of_another_agent_never_reaches_this_agent_or_its_workloads(
    agent: RunningAgent,
) -> None:
    agent.agent_ca.add_entry("theirs", "/ns/shop/sa/theirs", OWN_UID, parent=OTHER_AGENT)

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await read_next(call)
        assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED

    run(agent, scenario)
    assert agent.service.entries.entries() == ()


def test_jwt_svid_minted_by_the_ca_validates_through_the_workload_api(
    agent: RunningAgent,
) -> None:
    web = agent.agent_ca.add_entry("web", "/ns/shop/sa/web", OWN_UID)

    async def scenario(stub: Any) -> None:
        fetched = await stub.FetchJWTSVID(
            workload_pb2.JWTSVIDRequest(audience=["billing"]), metadata=HEADER
        )
        [svid] = fetched.svids
        assert svid.spiffe_id == str(web.spiffe_id)
        validated = await stub.ValidateJWTSVID(
            workload_pb2.ValidateJWTSVIDRequest(audience="billing", svid=svid.svid),
            metadata=HEADER,
        )
        assert validated.spiffe_id == str(web.spiffe_id)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ValidateJWTSVID(
                workload_pb2.ValidateJWTSVIDRequest(audience="other", svid=svid.svid),
                metadata=HEADER,
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    run(agent, scenario)


def test_tokens_of_the_previous_jwt_key_still_validate_after_rotation(
    agent: RunningAgent,
) -> None:
    agent_ca = agent.agent_ca
    agent_ca.add_entry("web", "/ns/shop/sa/web", OWN_UID)
    first_key = {a.key_id for a in agent_ca.server.agent_api.jwt_keys.authorities()}

    async def fetch(stub: Any, audience: str) -> str:
        answer = await stub.FetchJWTSVID(
            workload_pb2.JWTSVIDRequest(audience=[audience]), metadata=HEADER
        )
        token: str = answer.svids[0].svid
        return token

    async def validate(stub: Any, token: str, audience: str) -> str:
        answer = await stub.ValidateJWTSVID(
            workload_pb2.ValidateJWTSVIDRequest(audience=audience, svid=token), metadata=HEADER
        )
        spiffe_id: str = answer.spiffe_id
        return spiffe_id

    async def scenario(stub: Any) -> None:
        agent_ca.clock.advance(timedelta(hours=20) - timedelta(minutes=1))
        agent.settle()  # the next key is published; the agent syncs the bundle
        old = await fetch(stub, "before")
        agent_ca.clock.advance(timedelta(minutes=2))  # the next key now signs
        new = await fetch(stub, "after")
        agent.settle()
        keys = {a.key_id for a in agent_ca.server.agent_api.jwt_keys.authorities()}
        assert len(keys) == 2 and first_key < keys
        assert await validate(stub, old, "before") == "spiffe://cluster.local/ns/shop/sa/web"
        assert await validate(stub, new, "after") == "spiffe://cluster.local/ns/shop/sa/web"
        assert _kid(old) in first_key and _kid(new) not in first_key

    run(agent, scenario)


def test_sds_names_resolve_to_entry_svids_bundles_and_all(agent: RunningAgent) -> None:
    agent_ca = agent.agent_ca
    web = agent_ca.add_entry("web", "/ns/shop/sa/web", OWN_UID)

    async def scenario(stub: Any) -> None:
        resolver = agent.service.sds_resolver
        assert resolver.ensure(str(web.spiffe_id))
        assert resolver.ensure(str(TRUST_DOMAIN.id))
        assert resolver.ensure("ALL")
        assert not resolver.ensure("default")
        for name in ("spiffe://cluster.local/ns/shop/sa/nobody", "spiffe://other.org"):
            with pytest.raises(UnknownResourceError):
                resolver.ensure(name)
        secret = _cached(agent, str(web.spiffe_id))
        assert isinstance(secret, TlsCertificateSecret)
        assert secret.spiffe_id == str(web.spiffe_id)
        roots = _cached(agent, "ALL")
        assert isinstance(roots, TrustBundleSecret) and roots.root_fingerprints
        agent_ca.ca.repository.delete_entry("web", agent_ca.clock.now())
        agent_ca.clock.advance(timedelta(seconds=6))
        agent.settle()
        assert agent.cache.get(str(web.spiffe_id)) is None

    run(agent, scenario)


def test_a_rotated_entry_svid_is_pushed_to_the_open_stream(agent: RunningAgent) -> None:
    agent_ca = agent.agent_ca
    agent_ca.add_entry("web", "/ns/shop/sa/web", OWN_UID, ttl=timedelta(hours=1))

    async def scenario(stub: Any) -> None:
        call = stub.FetchX509SVID(workload_pb2.X509SVIDRequest(), metadata=HEADER)
        first = await read_next(call)
        agent_ca.clock.advance(timedelta(minutes=40))  # past half of the SVID's life
        await asyncio.to_thread(agent.settle)
        second = await read_next(call)
        call.cancel()
        assert first.svids[0].x509_svid != second.svids[0].x509_svid

    run(agent, scenario)


def _cached(agent: RunningAgent, name: str) -> object:
    entry = agent.cache.get(name)
    assert entry is not None, name
    return entry.secret


def _kid(token: str) -> str:
    import base64
    import json

    part = token.split(".")[0]
    header = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return str(header["kid"])


def _der_length(data: bytes) -> int:
    """Length of the first DER element (the leaf) of a concatenated chain."""
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")
