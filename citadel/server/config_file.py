"""``citadel serve --config FILE``: the server configuration as YAML.

Every key is optional; unknown keys are errors (a typo must not silently disable a check)::

    listen: 127.0.0.1:15012
    mtls_listen: 127.0.0.1:15013        # null: no mTLS listener
    metrics_listen: 127.0.0.1:15014     # null: no /metrics
    workers: 2
    dns_names: [localhost, citadel.citadel-system.svc]
    serving_cert_ttl: 24h
    grace: 10s
    rate_limit: {rate: 2000, burst: 4000}          # null: unlimited
    identity_rate_limit: {rate: 5, burst: 20}      # null: unlimited
    join_tokens: true
    mtls_authentication: true
    kubernetes:
      api_server: https://10.96.0.1:443    # or: in_cluster: true
      token_file: /var/run/secrets/kubernetes.io/serviceaccount/token
      ca_file: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt
      audiences: [istio-ca]
      cluster_id: Kubernetes
      issuers: [https://kubernetes.default.svc.cluster.local]
      qps: 500                           # per process; a mass start must not wait here
      burst: 1000
      cache_ttl: 5m
      publish_root_cert: true            # the leader keeps istio-ca-root-cert in namespaces
    oidc:
      issuer: https://accounts.example.com
      audiences: [citadel]
      jwks_url: https://accounts.example.com/jwks    # or jwks_file
      subject_prefix: oidc/users                     # omit: sub must be a SPIFFE ID
      algorithms: [ES256, RS256]
    node_agents:
      spiffe://cluster.local/ns/istio-system/sa/ztunnel: [spiffe://cluster.local/ns/apps]
    leader_election:                     # who runs the singleton jobs (rotation, ConfigMaps)
      backend: database                  # a lock row in the CA database; or: kubernetes (Lease)
      lease_duration: 15s
      renew_deadline: 10s
      retry_period: 2s
      name: citadel-leader
      namespace: citadel-system          # kubernetes only; default: the pod's namespace
    automatic_rotation: true             # the leader runs the rotation schedule
    authority_watch_interval: 3s         # every replica reloads rotated authorities this often
    plugin_ca_dir: /etc/cacerts          # a plug-in CA directory, installed and watched
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from citadel.cli_params import parse_duration
from citadel.k8s.client import KubeClientSettings, in_cluster_settings
from citadel.k8s.errors import KubeConfigError
from citadel.server.config import KubernetesAuthConfig, OidcAuthConfig, ServerConfig
from citadel.server.errors import ServerConfigError
from citadel.server.leader_config import LeaderElectionConfig
from citadel.server.rate_limit import RateLimit

__all__ = ["MAX_CONFIG_BYTES", "load_server_config", "server_config_from_mapping"]

MAX_CONFIG_BYTES = 1024 * 1024

_TOP = {
    "listen", "mtls_listen", "metrics_listen", "workers", "dns_names", "serving_cert_ttl",
    "grace", "threads", "max_concurrent_rpcs", "rate_limit", "identity_rate_limit",
    "join_tokens", "mtls_authentication", "kubernetes", "oidc", "node_agents",
    "leader_election", "automatic_rotation", "authority_watch_interval", "plugin_ca_dir",
}  # fmt: skip
_KUBE = {
    "api_server", "in_cluster", "token_file", "ca_file", "audiences", "cluster_id", "issuers",
    "qps", "burst", "cache_ttl", "timeout", "publish_root_cert",
}  # fmt: skip
_LEADER = {
    "backend", "lease_duration", "renew_deadline", "retry_period", "name", "namespace",
    "identity",
}  # fmt: skip
_OIDC = {
    "issuer", "audiences", "jwks_file", "jwks_url", "jwks_ca_file", "refresh",
    "subject_prefix", "algorithms", "leeway",
}  # fmt: skip


class _Reader:
    def __init__(self, data: Mapping[str, Any], where: str, allowed: set[str]) -> None:
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ServerConfigError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
        self.data = data
        self.where = where

    def fail(self, key: str, problem: str) -> ServerConfigError:
        return ServerConfigError(f"{self.where}.{key}: {problem}")

    def text(self, key: str) -> str | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, "must be a string")
        return value

    def integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise self.fail(key, "must be an integer")
        return value

    def number(self, key: str) -> float | None:
        value = self.data.get(key)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise self.fail(key, "must be a number")
        return None if value is None else float(value)

    def flag(self, key: str) -> bool | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def strings(self, key: str) -> tuple[str, ...] | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(key, "must be a list of non-empty strings")
        return tuple(value)

    def duration(self, key: str) -> timedelta | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return timedelta(seconds=value)
        if not isinstance(value, str):
            raise self.fail(key, "must be a duration such as 30s, 5m or 24h")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from exc

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        return Path(value) if value else None

    def mapping(self, key: str) -> Mapping[str, Any] | None:
        value = self.data.get(key)
        if value is not None and not isinstance(value, dict):
            raise self.fail(key, "must be a mapping")
        return value


def _limit(reader: _Reader, key: str) -> RateLimit | None:
    if key in reader.data and reader.data[key] is None:
        return None
    section = reader.mapping(key)
    assert section is not None
    inner = _Reader(section, f"{reader.where}.{key}", {"rate", "burst"})
    rate, burst = inner.number("rate"), inner.integer("burst")
    if rate is None or burst is None:
        raise reader.fail(key, "needs both rate and burst")
    try:
        return RateLimit(rate=rate, burst=burst)
    except ValueError as exc:
        raise reader.fail(key, str(exc)) from exc


def _kubernetes(section: Mapping[str, Any]) -> KubernetesAuthConfig:
    r = _Reader(section, "kubernetes", _KUBE)
    try:
        if r.flag("in_cluster"):
            api = in_cluster_settings()
        else:
            host = r.text("api_server")
            if not host:
                raise r.fail("api_server", "is required unless in_cluster is true")
            api = KubeClientSettings(
                host=host, token_file=r.path("token_file"), ca_file=r.path("ca_file")
            )
    except KubeConfigError as exc:
        raise ServerConfigError(f"kubernetes: {exc.message}") from exc
    options: dict[str, Any] = {
        "audiences": r.strings("audiences"),
        "cluster_id": r.text("cluster_id"),
        "issuers": r.strings("issuers"),
        "qps": r.number("qps"),
        "burst": r.integer("burst"),
        "max_cache_ttl": r.duration("cache_ttl"),
        "timeout": r.duration("timeout"),
        "publish_root_cert": r.flag("publish_root_cert"),
    }
    return KubernetesAuthConfig(api=api, **{k: v for k, v in options.items() if v is not None})


def _oidc(section: Mapping[str, Any]) -> OidcAuthConfig:
    r = _Reader(section, "oidc", _OIDC)
    issuer, audiences = r.text("issuer"), r.strings("audiences")
    if not issuer or not audiences:
        raise ServerConfigError("oidc: issuer and audiences are required")
    algorithms = r.strings("algorithms")
    options: dict[str, Any] = {
        "jwks_file": r.path("jwks_file"),
        "jwks_url": r.text("jwks_url"),
        "jwks_ca_file": r.path("jwks_ca_file"),
        "jwks_refresh": r.duration("refresh"),
        "subject_prefix": r.text("subject_prefix"),
        "algorithms": frozenset(algorithms) if algorithms else None,
        "leeway": r.duration("leeway"),
    }
    return OidcAuthConfig(
        issuer=issuer,
        audiences=audiences,
        **{k: v for k, v in options.items() if v is not None},
    )


def _leader_election(section: Mapping[str, Any]) -> LeaderElectionConfig:
    r = _Reader(section, "leader_election", _LEADER)
    options: dict[str, Any] = {
        "backend": r.text("backend"),
        "lease_duration": r.duration("lease_duration"),
        "renew_deadline": r.duration("renew_deadline"),
        "retry_period": r.duration("retry_period"),
        "name": r.text("name"),
        "namespace": r.text("namespace"),
        "identity": r.text("identity"),
    }
    return LeaderElectionConfig(**{k: v for k, v in options.items() if v is not None})


def _node_agents(section: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    agents: dict[str, tuple[str, ...]] = {}
    for agent, prefixes in section.items():
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
            raise ServerConfigError(f"node_agents.{agent}: must be a list of SPIFFE ID prefixes")
        agents[str(agent)] = tuple(prefixes)
    return agents


def server_config_from_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`ServerConfig` fields a YAML document sets (only those it sets).

    Raises:
        ServerConfigError: an unknown key, or a value of the wrong type or out of range.
    """
    r = _Reader(data, "config", _TOP)
    fields: dict[str, Any] = {}
    for key in ("listen", "mtls_listen", "metrics_listen"):
        if key in data:
            fields[key] = r.text(key)
    for key, value in (
        ("workers", r.integer("workers")),
        ("threads", r.integer("threads")),
        ("max_concurrent_rpcs", r.integer("max_concurrent_rpcs")),
        ("dns_names", r.strings("dns_names")),
        ("serving_cert_ttl", r.duration("serving_cert_ttl")),
        ("grace", r.duration("grace")),
        ("join_tokens", r.flag("join_tokens")),
        ("mtls_authentication", r.flag("mtls_authentication")),
        ("automatic_rotation", r.flag("automatic_rotation")),
        ("authority_watch_interval", r.duration("authority_watch_interval")),
        ("plugin_ca_dir", r.path("plugin_ca_dir")),
    ):
        if value is not None:
            fields[key] = value
    if "rate_limit" in data:
        fields["global_limit"] = _limit(r, "rate_limit")
    if "identity_rate_limit" in data:
        fields["identity_limit"] = _limit(r, "identity_rate_limit")
    kubernetes = r.mapping("kubernetes")
    if kubernetes is not None:
        fields["kubernetes"] = _kubernetes(kubernetes)
    oidc = r.mapping("oidc")
    if oidc is not None:
        fields["oidc"] = _oidc(oidc)
    leader = r.mapping("leader_election")
    if leader is not None:
        fields["leader_election"] = _leader_election(leader)
    agents = r.mapping("node_agents")
    if agents is not None:
        fields["node_agents"] = _node_agents(agents)
    return fields


def load_server_config(path: Path, **overrides: Any) -> ServerConfig:
    """Read ``path`` and apply ``overrides`` (command-line values) on top.

    Raises:
        ServerConfigError: unreadable, not YAML, or invalid.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ServerConfigError(f"cannot read {path}: {exc.strerror}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ServerConfigError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        data = yaml.safe_load(raw) or {}
    except yaml.YAMLError as exc:
        raise ServerConfigError(f"{path} is not valid YAML") from exc
    if not isinstance(data, dict):
        raise ServerConfigError(f"{path} must hold a mapping")
    fields = server_config_from_mapping(data)
    fields.update(overrides)
    try:
        return ServerConfig(**fields)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ServerConfigError):
            raise
        raise ServerConfigError(f"{path}: {exc}") from exc
