"""State-of-the-world SDS (``StreamSecrets``): the protocol logic of one stream.

Every response carries all requested resources that have a good secret, a new
``version_info`` and a new nonce. Envoy ACKs by echoing the nonce without
``error_detail``; a NACK carries ``error_detail`` (and the old version). After a NACK the
rejected content is never sent again on this stream; the last ACKed secret is re-pushed
under a new version instead. A request with an empty nonce (a new stream, including a
reconnect that still names its last ACKed version) is answered with the current secrets.
"""

from __future__ import annotations

import logging
from typing import Any

from envoy.service.discovery.v3 import discovery_pb2

from node_agent.sds.envoy_secrets import SECRET_TYPE_URL, to_envoy_any
from node_agent.sds.stream_base import StreamBase, StreamContext, Watch
from node_agent.secrets import Secret

__all__ = ["SotwStream"]

_log = logging.getLogger(__name__)


class SotwStream(StreamBase):
    api = "sotw"

    def __init__(self, context: StreamContext, watch: Watch) -> None:
        super().__init__(context, watch)
        self._names: list[str] = []
        self._pending_nonce: str | None = None
        self._pending: dict[str, Secret] = {}

    def on_request(self, request: Any) -> list[Any]:
        """Handle one DiscoveryRequest; returns the responses to send.

        Raises:
            SdsRequestError: the request breaks the protocol; the stream must end.
        """
        self._check_request(request)
        force = False
        nonce = request.response_nonce
        if nonce and self._pending_nonce is not None:
            if nonce != self._pending_nonce:
                _log.debug("%s: ignoring request with stale nonce %s", self._label(), nonce)
                return []
            if request.HasField("error_detail"):
                self._record_nack(self._pending, request.error_detail.message)
            else:
                self._record_ack(self._pending)
        else:  # a new stream (or a nonce from another stream's past): send what is current
            force = True
            if request.version_info:
                _log.info(
                    "%s: Envoy reconnected (last ACKed version %s); sending current secrets",
                    self._label(),
                    request.version_info[:64],
                )
        names = list(dict.fromkeys(request.resource_names))
        self._check_name_count(len(names))
        if names != self._names:
            force = True
            for name in set(self._names) - set(names):
                self._unwatch_name(name)
            self._names = names
        for name in self._names:
            self._watch_name(name)
        return self._respond(force=force)

    def on_change(self, name: str) -> list[Any]:
        """A watched secret changed in the cache."""
        if name not in self._names:
            return []
        return self._respond(force=False)

    def _respond(self, *, force: bool) -> list[Any]:
        desired: dict[str, Secret] = {}
        for name in self._names:
            if name in self.watched:
                secret = self._desired(name)
                if secret is not None:
                    desired[name] = secret
        if not desired:
            return []  # Envoy ACKs and ignores an empty response; send nothing instead
        if not force and desired == self.sent:
            return []
        response = discovery_pb2.DiscoveryResponse(
            version_info=self._next_version(),
            type_url=SECRET_TYPE_URL,
            nonce=self._next_nonce(),
        )
        response.resources.extend(to_envoy_any(s) for s in desired.values())
        self._pending_nonce = response.nonce
        self._pending = desired
        self.sent = dict(desired)
        self._ctx.metrics.sds_pushes.labels(self.api).inc()
        _log.debug(
            "%s: pushing version %s (%s)",
            self._label(),
            response.version_info,
            ", ".join(s.describe() for s in desired.values()),
        )
        return [response]
