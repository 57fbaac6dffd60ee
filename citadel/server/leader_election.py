"""Build the leader elector a replica campaigns with, from its :class:`LeaderElectionConfig`.

``database``: :class:`~citadel.k8s.db_lock_elector.DatabaseLockElector` on the CA database's
lock table (one conditional statement per round, so two replicas can never both win).
``kubernetes``: :class:`~citadel.k8s.lease_elector.KubernetesLeaseElector` on a Lease in the
pod's namespace.
"""

from __future__ import annotations

from datetime import timedelta

from kubernetes import client as k8s

from citadel.identity.clock import Clock
from citadel.k8s.client import current_namespace
from citadel.k8s.db_lock_elector import DatabaseLockElector, LockRepository
from citadel.k8s.errors import KubeConfigError
from citadel.k8s.leader_elector import LeaderElector
from citadel.k8s.lease_elector import KubernetesLeaseElector
from citadel.server.errors import ServerConfigError
from citadel.server.leader_config import LeaderElectionConfig

__all__ = ["build_elector", "lease_request_timeout"]

MAX_REQUEST_TIMEOUT = timedelta(seconds=5)


def lease_request_timeout(config: LeaderElectionConfig) -> timedelta:
    """Per API call: short enough that a hung call cannot outlast the renew deadline."""
    return min(MAX_REQUEST_TIMEOUT, config.renew_deadline / 2)


def build_elector(
    config: LeaderElectionConfig,
    *,
    repository: LockRepository,
    clock: Clock,
    api_client: k8s.ApiClient | None = None,
) -> LeaderElector:
    """The elector for ``config.backend``.

    Raises:
        ServerConfigError: ``kubernetes`` without an API client, or no namespace is known.
    """
    identity = config.holder_identity()
    if config.backend == "database":
        return DatabaseLockElector(
            repository,
            name=config.name,
            identity=identity,
            clock=clock,
            lease_duration=config.lease_duration,
        )
    if api_client is None:
        raise ServerConfigError("leader_election.backend kubernetes needs the kubernetes section")
    try:
        namespace = config.namespace or current_namespace()
    except KubeConfigError as exc:
        raise ServerConfigError(f"leader_election.namespace: {exc.message}") from exc
    return KubernetesLeaseElector(
        k8s.CoordinationV1Api(api_client),
        namespace=namespace,
        identity=identity,
        clock=clock,
        name=config.name,
        lease_duration=config.lease_duration,
        request_timeout=lease_request_timeout(config),
    )
