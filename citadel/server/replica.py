"""The background services of one CA replica, next to its CSR server.

Every replica (every ``citadel serve`` process, every worker of one) serves CSRs and:

* keeps its issuer in step with the stored authorities through
  :class:`~citadel.ca.lifecycle.CaLifecycle` (authority watch, revocation index, CRLs), so a
  rotation made by another replica or by ``citadel ca rotate`` is signed with here within
  ``authority_watch_interval``;
* takes part in the leader election (:mod:`citadel.server.leader_election`).

Only the elected leader runs the singleton jobs: the automatic rotation schedule and, in
Kubernetes with ``kubernetes.publish_root_cert``, the root-certificate ConfigMap publisher.
``citadel_server_is_leader`` is 1 while this process leads.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from kubernetes import client as k8s
from prometheus_client import Gauge

from citadel.ca.context import CaContext
from citadel.ca.issuer import Issuer
from citadel.ca.lifecycle import CaLifecycle, LifecycleOptions
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.schedule import RotationJob
from citadel.errors import CitadelError
from citadel.k8s.client import KubeApis, build_configuration, new_api_client
from citadel.k8s.leader_election_loop import LeaderElectionLoop
from citadel.k8s.root_cert_controller import RootCertController
from citadel.k8s.singleton_jobs import PeriodicJob, SingletonJob, SingletonJobRunner
from citadel.server.config import ServerConfig
from citadel.server.leader_election import build_elector
from citadel.server.metrics import ServerMetrics

__all__ = ["IS_LEADER_METRIC", "ReplicaServices"]

_log = logging.getLogger(__name__)
IS_LEADER_METRIC = "citadel_server_is_leader"
ROTATION_JOB = "rotation-schedule"
STOP_TIMEOUT = timedelta(seconds=15)


class ReplicaServices:
    """Authority lifecycle, leader election and singleton jobs of one server process.

    Args:
        ca: the open CA (its repository, key manager, clock and issuer).
        server_issuer: the issuer the CSR server signs with, when it is not ``ca.issuer``
            (multi-worker SQLite mode records through a file lock); it is kept in step too.
        config: the server configuration (leader election, rotation, Kubernetes).
        metrics: the process's metrics; ``citadel_server_is_leader`` is added to them.
    """

    def __init__(
        self,
        *,
        ca: CaContext,
        config: ServerConfig,
        metrics: ServerMetrics,
        server_issuer: Issuer | None = None,
        rotation_policy: RotationPolicy | None = None,
    ) -> None:
        self._ca = ca
        self._config = config
        policy = rotation_policy or RotationPolicy()
        # The lifecycle never rotates by itself here: the schedule is a leader-only job.
        self.lifecycle = CaLifecycle(
            ca,
            LifecycleOptions(
                rotation=RotationPolicy(
                    propagation_delay=policy.propagation_delay,
                    intermediate_propagation_delay=policy.intermediate_propagation_delay,
                    lock_ttl=policy.lock_ttl,
                    automatic=False,
                    check_interval=policy.check_interval,
                    retire_check_interval=policy.retire_check_interval,
                ),
                watch_interval=config.authority_watch_interval,
                plugin_dir=config.plugin_ca_dir,
            ),
        )
        if server_issuer is not None and server_issuer is not ca.issuer:
            issuer = server_issuer
            self.lifecycle.watcher.add_listener(
                lambda loaded: issuer.update_authorities(loaded.signer, loaded.roots)
            )
        self._api_client: k8s.ApiClient | None = None
        kube = config.kubernetes
        if kube is not None and (
            kube.publish_root_cert or config.leader_election.backend == "kubernetes"
        ):
            self._api_client = new_api_client(build_configuration(kube.api))
        jobs: list[SingletonJob] = []
        if config.automatic_rotation:
            self._rotation_job = RotationJob(self.lifecycle.rotation, ca.clock)
            jobs.append(
                PeriodicJob(
                    ROTATION_JOB, self._run_rotation_schedule, interval=policy.check_interval
                )
            )
        if kube is not None and kube.publish_root_cert:
            assert self._api_client is not None
            jobs.append(
                RootCertController(KubeApis.from_client(self._api_client).core, self._bundle_pem)
            )
        self.jobs = SingletonJobRunner(jobs)
        self.is_leader_gauge = Gauge(
            IS_LEADER_METRIC,
            "1 while this server process is the elected leader (runs the singleton jobs).",
            registry=metrics.registry,
            multiprocess_mode="livemax",
        )
        self.is_leader_gauge.set(0)
        elector = build_elector(
            config.leader_election,
            repository=ca.repository,
            clock=ca.clock,
            api_client=self._api_client,
        )
        self.election = LeaderElectionLoop(
            elector,
            clock=ca.clock,
            renew_deadline=config.leader_election.renew_deadline,
            retry_period=config.leader_election.retry_period,
            listeners=[self.jobs, self._leadership_changed],
        )

    # --- jobs -------------------------------------------------------------------------------
    def _bundle_pem(self) -> str | None:
        bundle = self._ca.issuer.trust_bundle()
        return bundle.to_pem() if bundle.x509_authorities else None

    def _run_rotation_schedule(self) -> None:
        try:
            done = self._rotation_job.run_once()
        except CitadelError as exc:
            _log.warning("scheduled rotation failed (will retry): %s", exc.message)
            return
        if done:
            self.lifecycle.watcher.poll()  # sign with the result here at once

    def _leadership_changed(self, leading: bool) -> None:
        self.is_leader_gauge.set(1 if leading else 0)

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self.election.is_leader

    @property
    def identity(self) -> str:
        return self.election.identity

    def start(self) -> None:
        """Start watching the authorities and campaigning for leadership."""
        self.lifecycle.start()
        self.election.start()
        _log.info(
            "leader election (%s, lease %s) as %s",
            self._config.leader_election.backend,
            self._config.leader_election.lease_duration,
            self.election.identity,
        )

    def stop(self, timeout: timedelta = STOP_TIMEOUT) -> None:
        """Step down (the jobs stop, then the lease is released), then stop watching.

        ``timeout`` bounds the wait for the election thread; it exceeds the singleton jobs'
        own stop bounds (10 s) so that the release normally happens before this returns.
        """
        try:
            self.election.stop(timeout)
            if self.election.is_leader:  # never started as a thread: step down here
                self.election.step_down(release=True)
        finally:
            self.is_leader_gauge.set(0)
            self.lifecycle.close()
            if self._api_client is not None:
                self._api_client.close()  # type: ignore[no-untyped-call]
