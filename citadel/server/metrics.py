"""The CA server's Prometheus metrics.

Names follow Istio's CA (``citadel_server_*``) so existing dashboards keep working. Counters
are exposed by prometheus-client with the ``_total`` suffix on the sample
(``citadel_server_csr_count_total``); the family name is the one listed here.

Invariant checked by the tests: every CSR call increments ``citadel_server_csr_count`` once,
and exactly one of ``citadel_server_success_cert_issuance_count`` or
``citadel_server_csr_sign_err_count{error=<kind>}``.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["LATENCY_BUCKETS", "ServerMetrics"]

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip


class ServerMetrics:
    """All metrics of one server process, registered in ``registry``.

    In multi-process mode (``PROMETHEUS_MULTIPROC_DIR`` set before prometheus-client is
    imported) the values go to the shared directory and the supervisor aggregates them;
    the gauges then report the maximum over live workers.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.csr_count = Counter("citadel_server_csr_count", "CSR requests received.", registry=r)
        self.authentication_failure_count = Counter(
            "citadel_server_authentication_failure_count",
            "CSR requests whose caller could not be authenticated.",
            ["reason"],
            registry=r,
        )
        self.csr_sign_err_count = Counter(
            "citadel_server_csr_sign_err_count",
            "CSR requests that did not produce a certificate, by error kind.",
            ["error"],
            registry=r,
        )
        self.success_cert_issuance_count = Counter(
            "citadel_server_success_cert_issuance_count",
            "Certificates issued through the CSR API.",
            registry=r,
        )
        self.root_cert_expiry_timestamp = Gauge(
            "citadel_server_root_cert_expiry_timestamp",
            "Unix time at which the earliest root of the trust bundle expires.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.cert_chain_expiry_timestamp = Gauge(
            "citadel_server_cert_chain_expiry_timestamp",
            "Unix time at which the CA's signing chain (intermediates and root) first expires.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.serving_cert_expiry_timestamp = Gauge(
            "citadel_server_serving_cert_expiry_timestamp",
            "Unix time at which the server's own TLS certificate expires.",
            registry=r,
            multiprocess_mode="livemin",
        )
        self.rpc_duration_seconds = Histogram(
            "citadel_server_rpc_duration_seconds",
            "Time spent serving each RPC, by method and status code.",
            ["method", "code"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.token_review_throttled_count = Counter(
            "citadel_server_token_review_throttled_count",
            "TokenReview calls delayed or refused by the client-side QPS limit.",
            ["outcome"],
            registry=r,
        )

    # --- recording helpers -----------------------------------------------------------------
    def record_rejection(self, kind: str, *, authentication: bool) -> None:
        self.csr_sign_err_count.labels(error=kind).inc()
        if authentication:
            self.authentication_failure_count.labels(reason=kind).inc()

    def record_issuance(self) -> None:
        self.success_cert_issuance_count.inc()

    def record_token_review_throttled(self, admitted: bool) -> None:
        self.token_review_throttled_count.labels(outcome="delayed" if admitted else "refused").inc()

    def set_ca_expiry(self, *, root_not_after: datetime, chain_not_after: datetime) -> None:
        self.root_cert_expiry_timestamp.set(root_not_after.timestamp())
        self.cert_chain_expiry_timestamp.set(chain_not_after.timestamp())

    def set_serving_cert_expiry(self, not_after: datetime) -> None:
        self.serving_cert_expiry_timestamp.set(not_after.timestamp())
