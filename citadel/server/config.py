"""The CA server's configuration (what ``citadel serve`` runs with).

Everything is a frozen dataclass validated on construction; the YAML file and the command
line both produce a :class:`ServerConfig` (see :mod:`citadel.server.config_file`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from citadel.authz.jwks import ALLOWED_ALGORITHMS
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId
from citadel.k8s.client import KubeClientSettings
from citadel.server.errors import ServerConfigError
from citadel.server.impersonation import parse_prefix
from citadel.server.leader_config import LeaderElectionConfig
from citadel.server.rate_limit import RateLimit

__all__ = [
    "DEFAULT_GLOBAL_LIMIT",
    "DEFAULT_IDENTITY_LIMIT",
    "DEFAULT_LISTEN",
    "DEFAULT_METRICS_LISTEN",
    "DEFAULT_MTLS_LISTEN",
    "KubernetesAuthConfig",
    "ListenAddress",
    "OidcAuthConfig",
    "ServerConfig",
]

DEFAULT_LISTEN = "127.0.0.1:15012"
DEFAULT_MTLS_LISTEN = "127.0.0.1:15013"
DEFAULT_METRICS_LISTEN = "127.0.0.1:15014"
DEFAULT_GLOBAL_LIMIT = RateLimit(rate=2000.0, burst=4000)
DEFAULT_IDENTITY_LIMIT = RateLimit(rate=5.0, burst=20)


@dataclass(frozen=True, slots=True)
class ListenAddress:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> ListenAddress:
        """``127.0.0.1:15012``, ``localhost:0`` or ``[::1]:15012``.

        Raises:
            ServerConfigError: not ``host:port`` with a port in 0..65535.
        """
        value = text.strip()
        host, sep, port_text = value.rpartition(":")
        if not sep or not host or not port_text.isdigit():
            raise ServerConfigError(f"listen address {text[:80]!r} is not host:port")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        port = int(port_text)
        if port > 65535:
            raise ServerConfigError(f"listen port {port} is out of range")
        return cls(host, port)

    def grpc_target(self, port: int | None = None) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port if port is None else port}"


@dataclass(frozen=True, kw_only=True)
class KubernetesAuthConfig:
    """The TokenReview authenticator.

    Attributes:
        api: where the API server is and our credentials for it.
        audiences: the audiences a token must be valid for (Istio: ``istio-ca``).
        cluster_id: when set, a ``clusterid`` header naming another cluster is refused.
        issuers: the cluster's service-account token issuers; when set, JWTs from other
            issuers are left to the OIDC authenticator.
        qps, burst: client-side limit on TokenReview calls, per server process. Generous by
            default: a mass start (thousands of pods at once, each with its own token) must
            not be throttled here; the API server has its own priority and fairness.
        max_cache_ttl, max_cache_entries: positive reviews are cached (by the token's
            SHA-256) until the token's exp, at most this long; the least recently used
            beyond the count are forgotten.
        publish_root_cert: the elected leader keeps the ``istio-ca-root-cert`` ConfigMap in
            every namespace (see :mod:`citadel.k8s.root_cert_controller`).
    """

    api: KubeClientSettings
    audiences: tuple[str, ...] = ("istio-ca",)
    cluster_id: str | None = None
    issuers: tuple[str, ...] = ()
    qps: float = 500.0
    burst: int = 1000
    max_wait: timedelta = timedelta(seconds=1)
    timeout: timedelta = timedelta(seconds=5)
    max_cache_ttl: timedelta = timedelta(minutes=5)
    max_cache_entries: int = 16_384  # a mass start's worth of pods per replica
    publish_root_cert: bool = False

    def __post_init__(self) -> None:
        if not self.audiences or not all(self.audiences):
            raise ServerConfigError("kubernetes.audiences must list at least one audience")
        if self.qps <= 0 or self.burst < 1:
            raise ServerConfigError("kubernetes.qps must be > 0 and kubernetes.burst >= 1")
        if self.max_cache_ttl < timedelta(0) or self.max_cache_entries < 1:
            raise ServerConfigError("kubernetes cache settings are out of range")

    @property
    def throttle_limit(self) -> RateLimit:
        return RateLimit(rate=self.qps, burst=self.burst)


@dataclass(frozen=True, kw_only=True)
class OidcAuthConfig:
    """The offline OIDC authenticator.

    Attributes:
        issuer: the exact ``iss``.
        audiences: accepted ``aud`` values.
        jwks_file / jwks_url: where the keys are (exactly one).
        subject_prefix: None → ``sub`` must be a SPIFFE ID of our trust domain; else
            ``sub`` is one path segment under this prefix (``oidc/users``).
    """

    issuer: str
    audiences: tuple[str, ...]
    jwks_file: Path | None = None
    jwks_url: str | None = None
    jwks_ca_file: Path | None = None
    jwks_refresh: timedelta = timedelta(minutes=5)
    subject_prefix: str | None = None
    algorithms: frozenset[str] = ALLOWED_ALGORITHMS
    leeway: timedelta = timedelta(seconds=30)

    def __post_init__(self) -> None:
        if not self.issuer:
            raise ServerConfigError("oidc.issuer is required")
        if not self.audiences or not all(self.audiences):
            raise ServerConfigError("oidc.audiences must list at least one audience")
        if (self.jwks_file is None) == (self.jwks_url is None):
            raise ServerConfigError("give exactly one of oidc.jwks_file and oidc.jwks_url")
        if not self.algorithms or not self.algorithms <= ALLOWED_ALGORITHMS:
            raise ServerConfigError(f"oidc.algorithms must be within {sorted(ALLOWED_ALGORITHMS)}")


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """``citadel serve``.

    Attributes:
        listen: the CSR API; no client certificate is requested here (tokens).
        mtls_listen: a second listener that requires a client certificate chaining to our
            roots (renewal with an existing SVID); None disables it. gRPC Python cannot
            *request* an optional client certificate, hence two listeners.
        metrics_listen: Prometheus ``/metrics``; None disables it.
        workers: server processes sharing the port (SO_REUSEPORT).
        node_agents: trusted node agent SPIFFE ID → SPIFFE ID prefixes it may request.
        global_limit / identity_limit: CSR rate limits (None = off). With several workers
            the global limit is divided between them.
        leader_election: how replicas elect the one that runs the singleton jobs.
        automatic_rotation: the leader runs the rotation schedule (turn it off when the
            replicas do not share a writable key directory, e.g. keys from a Secret).
        authority_watch_interval: how often every replica looks for authority changes
            (a rotation by another replica or the CLI) and reloads its issuer.
        plugin_ca_dir: a plug-in CA directory, installed before serving and watched.
    """

    listen: str = DEFAULT_LISTEN
    mtls_listen: str | None = DEFAULT_MTLS_LISTEN
    metrics_listen: str | None = DEFAULT_METRICS_LISTEN
    workers: int = field(default_factory=_default_workers)
    ready_file: Path | None = None
    dns_names: tuple[str, ...] = ("localhost",)
    serving_cert_ttl: timedelta = timedelta(hours=24)
    grace: timedelta = timedelta(seconds=10)
    threads: int = 16
    max_concurrent_rpcs: int = 1024
    max_receive_bytes: int = 256 * 1024
    kubernetes: KubernetesAuthConfig | None = None
    oidc: OidcAuthConfig | None = None
    join_tokens: bool = True
    mtls_authentication: bool = True
    node_agents: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    global_limit: RateLimit | None = DEFAULT_GLOBAL_LIMIT
    identity_limit: RateLimit | None = DEFAULT_IDENTITY_LIMIT
    leader_election: LeaderElectionConfig = field(default_factory=LeaderElectionConfig)
    automatic_rotation: bool = True
    authority_watch_interval: timedelta = timedelta(seconds=3)
    plugin_ca_dir: Path | None = None

    def __post_init__(self) -> None:
        for address in (self.listen, self.mtls_listen, self.metrics_listen):
            if address is not None:
                ListenAddress.parse(address)
        if not 1 <= self.workers <= 256:
            raise ServerConfigError("workers must be between 1 and 256")
        if not 1 <= self.threads <= 1024 or self.max_concurrent_rpcs < 1:
            raise ServerConfigError("threads / max_concurrent_rpcs are out of range")
        if self.serving_cert_ttl < timedelta(minutes=1):
            raise ServerConfigError("serving_cert_ttl must be at least one minute")
        if self.grace < timedelta(0):
            raise ServerConfigError("grace must not be negative")
        if not 16 * 1024 <= self.max_receive_bytes <= 4 * 1024 * 1024:
            raise ServerConfigError("max_receive_bytes must be between 16 KiB and 4 MiB")
        if self.leader_election.backend == "kubernetes" and self.kubernetes is None:
            raise ServerConfigError(
                "leader_election.backend kubernetes needs the kubernetes section (API server)"
            )
        if not timedelta(0) < self.authority_watch_interval <= timedelta(minutes=10):
            raise ServerConfigError("authority_watch_interval must be between 0 and 10m")
        self.agent_grants()

    def agent_grants(self) -> dict[SpiffeId, tuple[SpiffeId, ...]]:
        """The node-agent grants, parsed.

        Raises:
            ServerConfigError: an agent ID or prefix is not a SPIFFE ID, or has no prefix.
        """
        grants: dict[SpiffeId, tuple[SpiffeId, ...]] = {}
        for agent, prefixes in self.node_agents.items():
            try:
                agent_id = SpiffeId.parse(agent)
                parsed = tuple(parse_prefix(p) for p in prefixes)
            except InvalidSpiffeIdError as exc:
                raise ServerConfigError(f"node agent grant {agent!r}: {exc.message}") from exc
            if not parsed:
                raise ServerConfigError(f"node agent {agent} is granted no prefix")
            grants[agent_id] = parsed
        return grants
