"""Building SDS requests and a stream context for protocol-logic tests (no gRPC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import secret_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.rpc import status_pb2

from citadel.identity.clock import ManualClock
from node_agent.metrics import AgentMetrics
from node_agent.sds.catalog import PushGate, SecretCatalog
from node_agent.sds.envoy_secrets import SECRET_TYPE_URL
from node_agent.sds.stream_base import StreamContext
from node_agent.secret_cache import SecretCache, Subscription
from node_agent.secret_validation import SecretValidator

NODE = base_pb2.Node(id="sidecar~127.0.0.1~web", cluster="web")


@dataclass
class Harness:
    ctx: StreamContext
    cache: SecretCache
    metrics: AgentMetrics
    notified: list[str] = field(default_factory=list)

    def watch(self, name: str) -> Subscription:
        return self.cache.subscribe(name, self.notified.append)

    def count(self, metric: str, api: str) -> float:
        return self.metrics.registry.get_sample_value(metric, {"api": api}) or 0.0


def make_harness(clock: ManualClock, catalog: SecretCatalog | None = None) -> Harness:
    cache = SecretCache(clock)
    metrics = AgentMetrics()
    ctx = StreamContext(
        cache=cache,
        catalog=catalog or SecretCatalog(None),
        gate=PushGate(SecretValidator(), clock, metrics),
        metrics=metrics,
    )
    return Harness(ctx, cache, metrics)


def sotw_request(
    *names: str,
    version: str = "",
    nonce: str = "",
    error: str | None = None,
    node: bool = True,
) -> Any:
    request = discovery_pb2.DiscoveryRequest(
        version_info=version,
        resource_names=list(names),
        type_url=SECRET_TYPE_URL,
        response_nonce=nonce,
    )
    if node:
        request.node.CopyFrom(NODE)
    if error is not None:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


def delta_request(
    subscribe: tuple[str, ...] = (),
    unsubscribe: tuple[str, ...] = (),
    *,
    nonce: str = "",
    error: str | None = None,
    node: bool = True,
    initial: dict[str, str] | None = None,
) -> Any:
    request = discovery_pb2.DeltaDiscoveryRequest(
        type_url=SECRET_TYPE_URL,
        resource_names_subscribe=list(subscribe),
        resource_names_unsubscribe=list(unsubscribe),
        response_nonce=nonce,
        initial_resource_versions=initial or {},
    )
    if node:
        request.node.CopyFrom(NODE)
    if error is not None:
        request.error_detail.CopyFrom(status_pb2.Status(code=3, message=error))
    return request


def unpack(resource: Any) -> Any:
    secret = secret_pb2.Secret()
    assert resource.Unpack(secret)
    return secret
