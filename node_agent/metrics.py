"""Prometheus metrics of the agent, on a registry of its own (one per agent instance)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from citadel.identity.clock import Clock
from node_agent.secret_cache import SecretCache

__all__ = ["BUNDLE_RESULTS", "CSR_RESULTS", "AgentMetrics"]

BUNDLE_RESULTS = ("changed", "unchanged", "rejected", "failed")

CSR_RESULTS = (
    "success",
    "ca_unreachable",
    "ca_rejected",
    "invalid_issued_chain",
    "credential_error",
    "trust_bundle_unavailable",
    "error",
)


class _ExpiryCollector(Collector):
    """``citadel_agent_cert_expiry_seconds``: time left before each cached secret expires."""

    def __init__(self, cache: SecretCache, clock: Clock) -> None:
        self._cache = cache
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            "citadel_agent_cert_expiry_seconds",
            "Seconds until the cached certificate (or newest root) expires; negative once expired.",
            labels=["resource_name"],
        )
        now = self._clock.now()
        for entry in self._cache.entries():
            left = (entry.secret.not_after - now).total_seconds()
            family.add_metric([entry.secret.name], left)
        yield family


class AgentMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.csr_requests = Counter(
            "citadel_agent_csr_requests",
            "Outgoing CSR calls to the CA, by result.",
            ["result"],
            registry=r,
        )
        for result in CSR_RESULTS:
            self.csr_requests.labels(result)
        self.ca_unreachable = Gauge(
            "citadel_agent_ca_unreachable",
            "1 while the last CSR call could not reach the CA (cached certificates are served).",
            registry=r,
        )
        self.renewal_failing = Gauge(
            "citadel_agent_renewal_failing",
            "1 while the last renewal attempt failed for any reason.",
            registry=r,
        )
        self.rotations = Counter(
            "citadel_agent_certificate_rotations",
            "Certificates obtained from the CA and published to the cache.",
            registry=r,
        )
        self.sds_streams = Gauge(
            "citadel_agent_sds_streams", "Open SDS streams.", ["api"], registry=r
        )
        self.sds_pushes = Counter(
            "citadel_agent_sds_pushes", "SDS responses sent.", ["api"], registry=r
        )
        self.sds_nacks = Counter(
            "citadel_agent_sds_nacks",
            "SDS responses Envoy rejected (NACK).",
            ["api"],
            registry=r,
        )
        self.sds_unknown_resources = Counter(
            "citadel_agent_sds_unknown_resources",
            "Requests for SDS resource names the agent does not serve.",
            ["api"],
            registry=r,
        )
        self.sds_stream_errors = Counter(
            "citadel_agent_sds_stream_errors",
            "SDS streams closed with an error, by reason.",
            ["reason"],
            registry=r,
        )
        self.secrets_rejected = Counter(
            "citadel_agent_secrets_rejected",
            "Secrets that failed validation and were never pushed, by source.",
            ["source"],
            registry=r,
        )
        self.bundle_refreshes = Counter(
            "citadel_agent_bundle_refreshes",
            "Polls of the CA's trust bundle and CRLs, by result (changed: ROOTCA was "
            "republished; rejected: the answer failed the agent's checks).",
            ["result"],
            registry=r,
        )
        for result in BUNDLE_RESULTS:
            self.bundle_refreshes.labels(result)
        for api in ("sotw", "delta"):
            self.sds_streams.labels(api)
            self.sds_pushes.labels(api)
            self.sds_nacks.labels(api)
            self.sds_unknown_resources.labels(api)

    def watch_expiry(self, cache: SecretCache, clock: Clock) -> None:
        self.registry.register(_ExpiryCollector(cache, clock))
