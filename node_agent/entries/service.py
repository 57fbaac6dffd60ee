"""Per-entry workload identities on a node agent, assembled: sync, SVIDs, sources, endpoints.

The agent's own certificate (the ``default`` secret the rotator keeps in the shared cache)
is the mTLS credential towards the CA's agent API; the configured roots (``ROOTCA``) and the
bundle the CA serves are the trust anchors. Everything runs on the agent's scheduler; the
Workload API server (when configured) runs on the caller's asyncio loop.

    service = attach_entry_identities(agent, settings=EntrySettings(), workload_api=config)
    await service.start()   # after agent.start()
    ...
    await service.stop()    # before agent.stop()
"""

from __future__ import annotations

import logging
import random
from typing import TYPE_CHECKING, Any

from cryptography import x509

from citadel.identity.clock import Clock
from citadel.identity.errors import InvalidCertificateError
from citadel.identity.pem import (
    certificate_fingerprint,
    certificates_to_pem,
    load_certificates_pem,
)
from citadel.identity.spiffe_id import SpiffeId
from node_agent.agent_api_channel import AgentApiEndpoint, MtlsMaterial
from node_agent.entries.client import AgentApiClient
from node_agent.entries.entry_set import EntryDiff, EntrySet
from node_agent.entries.identity_source import EntryIdentitySource
from node_agent.entries.sds_resolver import EntrySdsResolver
from node_agent.entries.settings import EntrySettings
from node_agent.entries.svid_manager import EntrySvidManager
from node_agent.entries.sync import BundleHolder, EntrySyncLoop
from node_agent.errors import CredentialError
from node_agent.scheduler import Scheduler
from node_agent.secret_cache import SecretCache
from node_agent.secrets import (
    DEFAULT_CERTIFICATE,
    DEFAULT_ROOT,
    TlsCertificateSecret,
    TrustBundleSecret,
)
from node_agent.workload_api.server import WorkloadApiConfig, WorkloadApiServer
from node_agent.workload_api.servicer import WorkloadAttestor

if TYPE_CHECKING:
    from node_agent.agent import Agent

__all__ = ["EntryIdentityService", "EntrySettings", "attach_entry_identities"]

_log = logging.getLogger(__name__)


class EntryIdentityService:
    def __init__(
        self,
        *,
        agent_id: SpiffeId,
        endpoint: AgentApiEndpoint,
        cache: SecretCache,
        scheduler: Scheduler,
        clock: Clock,
        settings: EntrySettings | None = None,
        workload_api: WorkloadApiConfig | None = None,
        attestor: WorkloadAttestor | None = None,
        rng: random.Random | None = None,
    ) -> None:
        settings = settings if settings is not None else EntrySettings()
        self.agent_id = agent_id
        self._cache = cache
        self._scheduler = scheduler
        self.entries = EntrySet()
        self.bundles = BundleHolder(self._configured_roots)
        self.client = AgentApiClient(endpoint, self._mtls_material)
        self.svids = EntrySvidManager(
            signer=self.client,
            roots=self.bundles.roots,
            scheduler=scheduler,
            clock=clock,
            policy=settings.svid,
            rng=rng,
        )
        self.source = EntryIdentitySource(
            entries=self.entries,
            svids=self.svids,
            bundles=self.bundles,
            jwt_api=self.client,
            clock=clock,
        )
        self.sds_resolver = EntrySdsResolver(
            cache=cache, entries=self.entries, svids=self.svids, bundles=self.bundles
        )
        self.sync = EntrySyncLoop(
            api=self.client,
            entries=self.entries,
            bundles=self.bundles,
            trust_domain=agent_id.trust_domain,
            scheduler=scheduler,
            clock=clock,
            interval=settings.sync_interval,
            backoff=settings.backoff,
            rng=rng,
            on_change=self._changed,
        )
        self.workload_api = (
            WorkloadApiServer(workload_api, self.source, clock=clock, attestor=attestor)
            if workload_api is not None
            else None
        )
        self._own_certificate = cache.subscribe(DEFAULT_CERTIFICATE, self._own_certificate_changed)
        # ROOTCA follows the CA's roots and CRLs (node_agent.bundle_refresh): when it changes,
        # sync now so Workload API bundles and CRLs follow within the same round.
        self._trust = cache.subscribe(DEFAULT_ROOT, self._trust_changed)

    # --- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start the Workload API (if configured) and the first sync.

        Raises:
            SocketPathError / SocketInUseError: the Workload API socket cannot be used.
        """
        if self.workload_api is not None:
            await self.workload_api.start()
        self.sync.start()

    async def stop(self) -> None:
        self.sync.stop()
        self._scheduler.cancel(EntrySvidManager.TASK)
        self._own_certificate.close()
        self._trust.close()
        if self.workload_api is not None:
            await self.workload_api.stop()
        self.sds_resolver.close()
        self.source.close()
        self.client.close()

    # --- wiring -------------------------------------------------------------------------
    def _changed(self, diff: EntryDiff, bundle_changed: bool) -> None:
        self.svids.set_entries(self.entries.entries())
        if diff:
            self.source.forget_jwts()
        self.source.notify()
        self.sds_resolver.refresh()

    def _own_certificate_changed(self, name: str) -> None:
        if self.sync.last_sync is None:  # waiting for our first certificate: go now
            self.sync.request_sync()

    def _trust_changed(self, name: str) -> None:
        if self.sync.last_sync is not None:
            self.sync.request_sync()

    def _configured_roots(self) -> tuple[x509.Certificate, ...]:
        entry = self._cache.get(DEFAULT_ROOT)
        if entry is None or not isinstance(entry.secret, TrustBundleSecret):
            return ()
        try:
            return tuple(load_certificates_pem(entry.secret.trusted_ca_pem))
        except InvalidCertificateError:
            return ()

    def _mtls_material(self) -> MtlsMaterial:
        own = self._cache.get(DEFAULT_CERTIFICATE)
        if own is None or not isinstance(own.secret, TlsCertificateSecret):
            raise CredentialError("the agent has no certificate of its own yet")
        roots = {
            certificate_fingerprint(c): c
            for c in (*self._configured_roots(), *self.bundles.roots())
        }
        if not roots:
            raise CredentialError("the agent trusts no CA root yet")
        return MtlsMaterial(
            chain_pem=own.secret.cert_chain_pem,
            key_pem=own.secret.private_key_pem,
            roots_pem=certificates_to_pem([roots[k] for k in sorted(roots)]).encode("ascii"),
        )

    # --- reports ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """A JSON-able summary for the agent's status endpoint (no key material)."""
        error = self.sync.last_error
        identities = []
        for entry in self.entries.entries():
            svid = self.svids.current(entry.entry_id)
            failure = self.svids.last_error(entry.entry_id)
            identities.append(
                {
                    "entry_id": entry.entry_id,
                    "spiffe_id": str(entry.spiffe_id),
                    "serial": svid.serial_hex if svid is not None else None,
                    "not_after": svid.not_after.isoformat() if svid is not None else None,
                    "last_error": f"{failure.kind}: {failure.message}" if failure else None,
                }
            )
        return {
            "revision": self.entries.revision,
            "last_sync": self.sync.last_sync.isoformat() if self.sync.last_sync else None,
            "last_error": f"{error.kind}: {error.message}" if error is not None else None,
            "workload_api": self.workload_api.endpoint if self.workload_api else None,
            "identities": identities,
        }


def attach_entry_identities(
    agent: Agent,
    *,
    settings: EntrySettings | None = None,
    workload_api: WorkloadApiConfig | None = None,
    attestor: WorkloadAttestor | None = None,
) -> EntryIdentityService:
    """Build the service over a constructed :class:`~node_agent.agent.Agent` (its cache,
    scheduler, clock and CA settings; the agent API is on the CA's mTLS listener)."""
    ca = agent.config.ca
    endpoint = AgentApiEndpoint(
        address=ca.mtls_address or ca.address, server_name=ca.server_name, timeout=ca.timeout
    )
    return EntryIdentityService(
        agent_id=agent.config.spiffe_id,
        endpoint=endpoint,
        cache=agent.cache,
        scheduler=agent.scheduler,
        clock=agent.clock,
        settings=settings,
        workload_api=workload_api,
        attestor=attestor,
    )
