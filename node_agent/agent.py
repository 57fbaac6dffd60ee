"""Wiring: one agent = one cache, a trust store, a rotator, the CA bundle refresher, file
sources, the SDS server, the status endpoint.

Threads: the scheduler (renewals, bundle polls, debounced file reloads), watchdog's
observer, and the status HTTP server. The SDS server runs on the caller's asyncio loop.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from citadel.identity.clock import Clock, SystemClock
from node_agent.agent_api_channel import AgentApiEndpoint
from node_agent.bundle_client import BundleClient
from node_agent.bundle_refresh import BundleRefresher, BundleSource
from node_agent.ca_client import CaClient, CaEndpoint
from node_agent.cert_writer import CertWriter
from node_agent.config import AgentConfig, CredentialSettings
from node_agent.credentials import (
    CertificateFileCredential,
    Credential,
    JoinTokenCredential,
    TokenFileCredential,
)
from node_agent.entries.service import EntryIdentityService
from node_agent.errors import SecretValidationError
from node_agent.file_sources import FileSecretSources
from node_agent.file_watch import DirectoryWatcher
from node_agent.metrics import AgentMetrics
from node_agent.rotator import CertificateRotator, CsrSigner, RotatorSettings
from node_agent.scheduler import Scheduler
from node_agent.sds.catalog import PushGate, SecretCatalog
from node_agent.sds.server import SdsServer
from node_agent.sds.stream_base import StreamContext
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import SecretValidator, ValidateSecret
from node_agent.secrets import DEFAULT_CERTIFICATE, DEFAULT_ROOT, TlsCertificateSecret
from node_agent.status_server import StatusServer
from node_agent.trust_status import trust_bundle_status
from node_agent.trust_store import TrustStore

__all__ = ["Agent", "RunningAgent", "bootstrap_credential"]

_log = logging.getLogger(__name__)


def bootstrap_credential(settings: CredentialSettings) -> Credential:
    """The credential for the first CSR (and every CSR when not renewing over mTLS)."""
    if settings.type == "token_file":
        assert settings.path is not None
        return TokenFileCredential(settings.path)
    if settings.type == "join_token":
        return JoinTokenCredential(path=settings.path, token=settings.token)
    assert settings.cert_file is not None and settings.key_file is not None
    return CertificateFileCredential(settings.cert_file, settings.key_file)


@dataclass(frozen=True, slots=True)
class RunningAgent:
    """Where a started agent can be reached."""

    pid: int
    status_port: int
    sds_socket: str | None


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        clock: Clock | None = None,
        signer: CsrSigner | None = None,
        validator: ValidateSecret | None = None,
        rng: random.Random | None = None,
        bundle_source: BundleSource | None = None,
    ) -> None:
        self.config = config
        self.clock = clock if clock is not None else SystemClock()
        self.metrics = AgentMetrics()
        self.cache = SecretCache(self.clock)
        self.metrics.watch_expiry(self.cache, self.clock)
        self.validator: ValidateSecret = validator if validator is not None else SecretValidator()
        self.scheduler = Scheduler(self.clock)
        self.watcher = DirectoryWatcher(
            self.scheduler, self.clock, debounce=config.file_secrets.debounce
        )
        endpoint = CaEndpoint(
            address=config.ca.address,
            mtls_address=config.ca.mtls_address,
            server_name=config.ca.server_name,
            timeout=config.ca.timeout,
            cluster_id=config.ca.cluster_id,
        )
        writer = CertWriter(config.output_dir) if config.output_dir is not None else None
        self.trust = TrustStore(
            root_file=config.ca.root_bundle,
            cache=self.cache,
            validator=self.validator,
            metrics=self.metrics,
        )
        self.bundle_client: BundleClient | None = None
        self.bundles: BundleRefresher | None = None
        if config.ca.bundle_refresh is not None:
            if bundle_source is None:
                self.bundle_client = BundleClient(
                    AgentApiEndpoint(
                        address=config.ca.mtls_address or config.ca.address,
                        server_name=config.ca.server_name,
                        timeout=config.ca.timeout,
                    )
                )
                bundle_source = self.bundle_client
            self.bundles = BundleRefresher(
                source=bundle_source,
                trust=self.trust,
                own_certificate=lambda: self.rotator.current,
                trust_domain=config.spiffe_id.trust_domain,
                scheduler=self.scheduler,
                clock=self.clock,
                metrics=self.metrics,
                interval=config.ca.bundle_refresh,
                rng=rng,
            )
        self.rotator = CertificateRotator(
            RotatorSettings(
                spiffe_id=config.spiffe_id,
                root_bundle_path=config.ca.root_bundle,
                key_type=config.key_type,
                ttl=config.ttl,
                rotation=config.rotation,
                backoff=config.backoff,
                renew_with_certificate=config.renew_with_certificate,
            ),
            signer=signer if signer is not None else CaClient(endpoint),
            bootstrap=bootstrap_credential(config.ca.credential),
            cache=self.cache,
            scheduler=self.scheduler,
            clock=self.clock,
            metrics=self.metrics,
            validator=self.validator,
            rng=rng,
            writer=writer,
            trust=self.trust,
            on_untrusted_chain=self._refresh_bundle_now,
        )
        self._own_certificate = self.cache.subscribe(
            DEFAULT_CERTIFICATE, lambda _name: self._first_certificate()
        )
        self.files = FileSecretSources(
            cache=self.cache,
            clock=self.clock,
            watcher=self.watcher,
            validator=self.validator,
            metrics=self.metrics,
            allowed_dirs=config.file_secrets.allowed_dirs,
        )
        self.entries = (
            EntryIdentityService(
                agent_id=config.spiffe_id,
                endpoint=AgentApiEndpoint(
                    address=config.ca.mtls_address or config.ca.address,
                    server_name=config.ca.server_name,
                    timeout=config.ca.timeout,
                ),
                cache=self.cache,
                scheduler=self.scheduler,
                clock=self.clock,
                settings=config.entries,
                workload_api=config.workload_api,
                rng=rng,
            )
            if config.entries is not None
            else None
        )
        self.stream_context = StreamContext(
            cache=self.cache,
            catalog=SecretCatalog(
                self.files, resolver=self.entries.sds_resolver if self.entries else None
            ),
            gate=PushGate(self.validator, self.clock, self.metrics),
            metrics=self.metrics,
        )
        self.sds: SdsServer | None = (
            SdsServer(config.sds.socket_path, self.stream_context) if config.sds.enabled else None
        )
        self.status_server = StatusServer(
            config.status.address,
            config.status.port,
            readiness=self.readiness,
            status=self.status,
            registry=self.metrics.registry,
            rotate=self.rotator.request_renewal,
        )

    # --- lifecycle ---------------------------------------------------------------------------
    async def start(self, *, pid: int) -> RunningAgent:
        """Start every component; the SDS socket is checked first so a clash fails fast.

        Raises:
            SocketPathError / SocketInUseError: the SDS socket cannot be used.
        """
        if self.sds is not None:
            await self.sds.start()
        try:
            self.watcher.start()
            self.watcher.watch(self.config.ca.root_bundle.parent, self.rotator.refresh_trust_bundle)
            self.scheduler.start()
            self.rotator.start()
            if self.bundles is not None:
                self.bundles.start()
            if self.entries is not None:
                await self.entries.start()
            port = self.status_server.start()
        except BaseException:
            await self.stop()
            raise
        return RunningAgent(
            pid=pid,
            status_port=port,
            sds_socket=str(self.sds.socket_path) if self.sds is not None else None,
        )

    async def stop(self) -> None:
        if self.entries is not None:
            await self.entries.stop()
        self.status_server.stop()
        if self.sds is not None:
            await self.sds.stop()
        self.scheduler.stop()
        self.watcher.stop()
        self._own_certificate.close()
        if self.bundle_client is not None:
            self.bundle_client.close()

    # --- the CA's bundle ---------------------------------------------------------------------
    def _refresh_bundle_now(self) -> None:
        if self.bundles is not None:
            self.bundles.request_refresh()

    def _first_certificate(self) -> None:
        """The first certificate is what the bundle poll authenticates with: go now."""
        if self.bundles is not None and self.bundles.last_refresh is None:
            self.bundles.request_refresh()

    # --- reports -----------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        entry = self.cache.get(DEFAULT_CERTIFICATE)
        if entry is None:
            return False, "no certificate yet"
        try:
            self.validator(entry.secret, self.clock.now())
        except SecretValidationError as exc:
            return False, f"cached certificate is not usable: {exc.message}"
        if self.cache.get(DEFAULT_ROOT) is None:
            return False, "no trust bundle yet"
        return True, "ready"

    def _trust_status(self) -> dict[str, Any]:
        bundles = self.bundles
        error = bundles.last_error if bundles is not None else None
        return {
            "source": "ca" if self.trust.from_ca else "root_file",
            "bundle_version": self.trust.version() or None,
            "refresh_seconds": bundles.interval.total_seconds() if bundles else None,
            "last_refresh": (
                bundles.last_refresh.isoformat() if bundles and bundles.last_refresh else None
            ),
            "last_error": f"{error.kind}: {error.message}" if error is not None else None,
        }

    def status(self) -> dict[str, Any]:
        now = self.clock.now()
        ready, reason = self.readiness()
        error = self.rotator.last_error
        secrets: list[dict[str, Any]] = []
        for entry in self.cache.entries():
            secret = entry.secret
            item: dict[str, Any] = {
                "name": secret.name,
                "not_after": secret.not_after.isoformat(),
                "expires_in_seconds": int((secret.not_after - now).total_seconds()),
                "published_at": entry.published_at.isoformat(),
            }
            if isinstance(secret, TlsCertificateSecret):
                item.update(
                    type="tls_certificate",
                    spiffe_id=secret.spiffe_id,
                    serial=secret.serial_hex,
                    not_before=secret.not_before.isoformat(),
                )
            else:
                item.update(trust_bundle_status(secret))
            secrets.append(item)
        next_renewal = self.rotator.next_renewal
        return {
            "spiffe_id": str(self.config.spiffe_id),
            "ready": ready,
            "reason": reason,
            "ca_address": self.config.ca.address,
            "ca_unreachable": self.rotator.ca_unreachable,
            "last_error": f"{error.kind}: {error.message}" if error is not None else None,
            "next_renewal": next_renewal.isoformat() if next_renewal is not None else None,
            "sds_socket": str(self.config.sds.socket_path) if self.sds is not None else None,
            "sds_watches": self.cache.subscriber_count(),
            "trust": self._trust_status(),
            "secrets": secrets,
            "entries": self.entries.status() if self.entries is not None else None,
        }
