"""Incremental SDS (``DeltaSecrets``, Envoy's ``DELTA_GRPC``): the logic of one stream.

Envoy subscribes and unsubscribes names; each response carries only the resources whose
content changed for this stream, each with its own new version, under a new nonce. ACK
and NACK work per nonce as in SotW, and a NACKed content is replaced by the last ACKed
one under a new version. On a new stream, ``initial_resource_versions`` (what Envoy held
before a reconnect) subscribes those names and the current secrets are sent.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from node_agent.sds.envoy_secrets import SECRET_TYPE_URL, to_envoy_any
from node_agent.sds.stream_base import StreamBase, StreamContext, Watch
from node_agent.secrets import Secret

__all__ = ["DeltaStream"]

_log = logging.getLogger(__name__)
MAX_PENDING = 32


class DeltaStream(StreamBase):
    api = "delta"

    def __init__(self, context: StreamContext, watch: Watch) -> None:
        super().__init__(context, watch)
        self._subscribed: set[str] = set()
        self._pending: OrderedDict[str, dict[str, Secret]] = OrderedDict()

    def on_request(self, request: Any) -> list[Any]:
        """Handle one DeltaDiscoveryRequest; returns the responses to send.

        Raises:
            SdsRequestError: the request breaks the protocol; the stream must end.
        """
        first = self.node_id is None
        self._check_request(request)
        touched: set[str] = set()
        nonce = request.response_nonce
        if nonce:
            sent = self._pending.pop(nonce, None)
            if sent is None:
                _log.debug("%s: nonce %s is unknown or already answered", self._label(), nonce)
            elif request.HasField("error_detail"):
                self._record_nack(sent, request.error_detail.message)
                touched.update(sent)
            else:
                self._record_ack(sent)
        if first and request.initial_resource_versions:
            _log.info(
                "%s: Envoy reconnected holding %d resource(s); sending current secrets",
                self._label(),
                len(request.initial_resource_versions),
            )
        for name in request.resource_names_unsubscribe:
            self._subscribed.discard(name)
            self._unwatch_name(name)
        wanted = {*request.initial_resource_versions, *request.resource_names_subscribe}
        self._check_name_count(len(self._subscribed | wanted))
        for name in (*request.initial_resource_versions, *request.resource_names_subscribe):
            if name in self._subscribed:
                continue
            self._subscribed.add(name)
            if self._watch_name(name):
                touched.add(name)
        return self._respond(touched)

    def on_change(self, name: str) -> list[Any]:
        if name not in self._subscribed:
            return []
        return self._respond({name})

    def _respond(self, names: set[str]) -> list[Any]:
        changes: dict[str, Secret] = {}
        for name in sorted(names):
            if name not in self.watched:
                continue
            secret = self._desired(name)
            if secret is not None and self.sent.get(name) != secret:
                changes[name] = secret
        if not changes:
            return []
        response = discovery_pb2.DeltaDiscoveryResponse(
            system_version_info=self._next_version(),
            type_url=SECRET_TYPE_URL,
            nonce=self._next_nonce(),
        )
        for name, secret in changes.items():
            response.resources.append(
                discovery_pb2.Resource(
                    name=name, version=self._next_version(), resource=to_envoy_any(secret)
                )
            )
        self._pending[response.nonce] = changes
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        self.sent.update(changes)
        self._ctx.metrics.sds_pushes.labels(self.api).inc()
        _log.debug(
            "%s: pushing %s", self._label(), ", ".join(s.describe() for s in changes.values())
        )
        return [response]
