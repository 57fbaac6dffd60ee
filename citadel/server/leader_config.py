"""Leader election settings of a CA replica (``leader_election:`` in the server YAML).

Every replica serves CSRs; only the elected leader runs the singleton jobs (the automatic
rotation schedule, the root-certificate ConfigMap publisher). Outside Kubernetes the election
is a row lock in the shared database; inside, a ``coordination.k8s.io/v1`` Lease.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

from citadel.k8s.lease_elector import DEFAULT_LEASE_NAME
from citadel.server.errors import ServerConfigError

__all__ = [
    "LEADER_BACKENDS",
    "LeaderElectionConfig",
    "default_holder_identity",
]

LEADER_BACKENDS = ("database", "kubernetes")
POD_NAME_ENV = "POD_NAME"
# A Kubernetes object name (DNS subdomain); also a safe database lock name.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_MAX_NAME = 253
_MAX_IDENTITY = 200


@dataclass(frozen=True, kw_only=True)
class LeaderElectionConfig:
    """How the replicas elect the one that runs the singleton jobs.

    Attributes:
        backend: ``database`` (a lock row in the CA database: PostgreSQL shared by the
            replicas, or SQLite for one host) or ``kubernetes`` (a Lease; needs the
            ``kubernetes`` section for the API server and RBAC for the Lease).
        lease_duration: how long a claim holds the others off; a dead leader is replaced
            at most this long (plus one ``retry_period``) after its last renewal.
        renew_deadline: a leader that could not renew for this long steps down (before the
            lease runs out, so two leaders never overlap).
        retry_period: time between election rounds.
        name: the lock / Lease name (the deploy/ RBAC grants ``citadel-leader`` only).
        namespace: the Lease's namespace (None: the pod's own namespace).
        identity: this process's holder identity (None: ``$POD_NAME`` or the host name,
            plus the PID and a random suffix, so several workers never share one).
    """

    backend: str = "database"
    lease_duration: timedelta = timedelta(seconds=15)
    renew_deadline: timedelta = timedelta(seconds=10)
    retry_period: timedelta = timedelta(seconds=2)
    name: str = DEFAULT_LEASE_NAME
    namespace: str | None = None
    identity: str | None = None

    def __post_init__(self) -> None:
        if self.backend not in LEADER_BACKENDS:
            raise ServerConfigError(
                f"leader_election.backend must be one of {', '.join(LEADER_BACKENDS)}, "
                f"not {self.backend[:40]!r}"
            )
        for field_name in ("lease_duration", "renew_deadline", "retry_period"):
            if not isinstance(getattr(self, field_name), timedelta):
                raise TypeError(f"leader_election.{field_name} must be a timedelta")
        if self.lease_duration < timedelta(seconds=1):
            raise ServerConfigError("leader_election.lease_duration must be at least 1s")
        if not timedelta(0) < self.retry_period < self.renew_deadline < self.lease_duration:
            raise ServerConfigError(
                "leader_election needs 0 < retry_period < renew_deadline < lease_duration"
            )
        if len(self.name) > _MAX_NAME or not _NAME.fullmatch(self.name):
            raise ServerConfigError(
                f"leader_election.name {self.name[:64]!r} is not a valid Kubernetes object name"
            )
        if self.namespace is not None and not _NAME.fullmatch(self.namespace):
            raise ServerConfigError(
                f"leader_election.namespace {self.namespace[:64]!r} is not a valid namespace"
            )
        if self.identity is not None and not (
            0 < len(self.identity) <= _MAX_IDENTITY and self.identity.isprintable()
        ):
            raise ServerConfigError(
                f"leader_election.identity must be 1 to {_MAX_IDENTITY} printable characters"
            )

    def holder_identity(self, environ: Mapping[str, str] | None = None) -> str:
        """The configured identity, or a fresh one unique to this process."""
        if self.identity is not None:
            return self.identity
        return default_holder_identity(environ)


def default_holder_identity(environ: Mapping[str, str] | None = None) -> str:
    """``<pod or host name>_<pid>_<random>``: unique per process, readable in the lock row."""
    env = os.environ if environ is None else environ
    base = env.get(POD_NAME_ENV, "").strip() or socket.gethostname() or "citadel"
    return f"{base[:150]}_{os.getpid()}_{secrets.token_hex(3)}"
