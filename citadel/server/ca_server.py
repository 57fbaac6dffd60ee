"""Everything one server process runs on top of an open CA: the CSR service, its TLS
serving certificate, the gRPC server and a maintenance loop (certificate renewal, expiry
gauges)."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from citadel.ca.bootstrap import LoadedAuthorities
from citadel.ca.context import CaContext
from citadel.ca.issuer import Issuer
from citadel.ca.lifecycle import CaLifecycle
from citadel.errors import CitadelError
from citadel.server.agent_assembly import AgentApiParts, build_agent_api
from citadel.server.assembly import CsrServiceParts, build_csr_service
from citadel.server.config import ServerConfig
from citadel.server.grpc_server import BoundPorts, CsrServer
from citadel.server.lifecycle_link import LifecycleLink
from citadel.server.metrics import ServerMetrics
from citadel.server.periodic import PeriodicTasks
from citadel.server.servicer import IstioCertificateServicer
from citadel.server.serving_cert import ServingCertificate, ServingIdentity
from citadel.server.write_lock import FileLockedRecorder

__all__ = ["CaServer"]

_log = logging.getLogger(__name__)


def _issuer_with_recorder(ca: CaContext, recorder: FileLockedRecorder) -> Issuer:
    """The CA's issuer, but recording through ``recorder`` (same signer, roots, limits)."""
    config = ca.config
    return Issuer(
        signer=ca.authorities.signer,
        roots=ca.authorities.roots,
        trust_domain=config.trust_domain,
        recorder=recorder,
        clock=ca.clock,
        default_ttl=config.default_ttl,
        max_ttl=config.max_ttl,
        skew=config.skew,
        max_batch=config.max_batch,
        commit_timeout=config.commit_timeout,
    )


class CaServer:
    """The CA's network service in this process.

    Args:
        ca: an open CA (its issuer, repository and clock are used; it is not closed here).
        worker_count: how many processes share the port (divides the global rate limit).
        so_reuseport / ports: multi-worker mode (see :mod:`citadel.server.supervisor`).
        write_lock_file: serialise issuance writes with other processes through this file
            (several workers on one SQLite database; see :mod:`.write_lock`).
    """

    def __init__(
        self,
        *,
        ca: CaContext,
        config: ServerConfig,
        metrics: ServerMetrics | None = None,
        worker_count: int = 1,
        so_reuseport: bool = False,
        ports: BoundPorts | None = None,
        maintenance_interval: timedelta | None = None,
        write_lock_file: Path | None = None,
    ) -> None:
        self.ca = ca
        self.config = config
        self.metrics = metrics if metrics is not None else ServerMetrics()
        self._recorder: FileLockedRecorder | None = None
        self.issuer = ca.issuer
        if write_lock_file is not None:
            self._recorder = FileLockedRecorder(ca.repository, write_lock_file)
            self.issuer = _issuer_with_recorder(ca, self._recorder)
        self.lifecycle_link = LifecycleLink(ca.repository)
        self.parts: CsrServiceParts = build_csr_service(
            config,
            issuer=self.issuer,
            store=ca.repository,
            clock=ca.clock,
            metrics=self.metrics,
            worker_count=worker_count,
            is_revoked=self.lifecycle_link.is_revoked,
        )
        self.serving = ServingCertificate(
            issuer=self.issuer,
            identity=ServingIdentity.for_trust_domain(
                ca.issuer.trust_domain, dns_names=config.dns_names, ttl=config.serving_cert_ttl
            ),
            clock=ca.clock,
            on_renewed=lambda material: self.metrics.set_serving_cert_expiry(material.not_after),
        )
        self.agent_api: AgentApiParts = build_agent_api(
            ca=ca,
            config=config,
            issuer=self.issuer,
            crls=self.lifecycle_link.crls,
            is_revoked=self.lifecycle_link.is_revoked,
            on_bundle_ack=self.lifecycle_link.record_bundle_ack,
        )
        self.grpc = CsrServer(
            config=config,
            servicer=IstioCertificateServicer(self.parts.service, self.metrics),
            serving=self.serving,
            so_reuseport=so_reuseport,
            ports=ports,
            extra_handlers=(self.agent_api.handler,),
        )
        interval = maintenance_interval or min(timedelta(seconds=30), config.serving_cert_ttl / 20)
        self._maintenance = PeriodicTasks(
            (self.serving.refresh_if_due, self.update_ca_gauges),
            interval=interval,
            name="citadel-server-maintenance",
        )

    def attach_lifecycle(self, lifecycle: CaLifecycle) -> None:
        """Check revocations against the lifecycle's index, serve its CRLs to agents, count
        their bundle acknowledgements, and renew the serving certificate whenever the
        stored authorities change (so it follows a rotation before the old root leaves)."""
        self.lifecycle_link.attach(lifecycle)
        lifecycle.watcher.add_listener(self._authorities_changed)

    def _authorities_changed(self, _loaded: LoadedAuthorities) -> None:
        try:
            material = self.serving.renew()
        except CitadelError as exc:
            _log.warning(
                "serving certificate not renewed after an authority change (will retry): %s",
                exc.message,
            )
            return
        _log.info("serving certificate renewed after an authority change: %s", material.serial_hex)
        self.update_ca_gauges()

    def update_ca_gauges(self) -> None:
        issuer = self.issuer
        roots = issuer.trust_bundle().x509_authorities
        root_expiry = min(root.not_valid_after_utc for root in roots)
        chain_expiry = min(
            [issuer.signer.not_after, *(c.not_valid_after_utc for c in issuer.signer.chain_to_root)]
        )
        self.metrics.set_ca_expiry(root_not_after=root_expiry, chain_not_after=chain_expiry)

    def start(self) -> BoundPorts:
        """Issue the serving certificate, bind and serve.

        Raises:
            ServingCertificateError, ServerConfigError: the server cannot start.
        """
        self.serving.current()
        self.update_ca_gauges()
        ports = self.grpc.start()
        self._maintenance.start()
        return ports

    def stop(self, grace: timedelta | None = None) -> None:
        """Finish in-flight calls (within ``grace``), stop, release the authenticators."""
        self._maintenance.stop()
        try:
            self.grpc.stop(grace)
        finally:
            self.parts.close()
            if self._recorder is not None:
                self.issuer.close()
                self._recorder.close()
            self.agent_api.close()
