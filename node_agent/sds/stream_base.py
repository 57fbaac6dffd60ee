"""State shared by the SotW and Delta SDS streams (protocol logic, no gRPC).

A stream tracks, per resource name, what it last sent, what Envoy last ACKed, and which
contents Envoy NACKed. What to send for a name is the cached secret, unless Envoy already
rejected that exact content or it fails the push gate; then the last ACKed (good) secret.
Nothing that fails the gate is ever sent.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from node_agent.errors import SdsRequestError, UnknownResourceError
from node_agent.metrics import AgentMetrics
from node_agent.sds.catalog import PushGate, SecretCatalog
from node_agent.sds.envoy_secrets import SECRET_TYPE_URL
from node_agent.secret_cache import SecretCache, Subscription
from node_agent.secrets import Secret

__all__ = ["StreamBase", "StreamContext", "Watch"]

_log = logging.getLogger(__name__)

Watch = Callable[[str], Subscription]
MAX_ERROR_DETAIL = 500
# Envoy asks for one name per stream; a few dozen leaves room for other clients while
# keeping a hostile local client from making a stream watch (and log) without bound.
MAX_NAMES_PER_STREAM = 64


@dataclass(slots=True)
class StreamContext:
    """What every stream of one server shares."""

    cache: SecretCache
    catalog: SecretCatalog
    gate: PushGate
    metrics: AgentMetrics
    versions: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    nonces: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    stream_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))


class StreamBase:
    api = "sotw"

    def __init__(self, context: StreamContext, watch: Watch) -> None:
        self._ctx = context
        self._watch = watch
        self.stream_id = next(context.stream_ids)
        self.node_id: str | None = None
        self._subscriptions: dict[str, Subscription] = {}
        self._unknown: set[str] = set()
        self.acked: dict[str, Secret] = {}
        self.sent: dict[str, Secret] = {}
        self._rejected: dict[str, set[str]] = {}

    # --- request checks --------------------------------------------------------------------
    def _check_request(self, request: Any) -> None:
        if self.node_id is None:
            if not request.HasField("node") or not request.node.id:
                raise SdsRequestError(
                    "the first SDS request of a stream must carry 'node' with an 'id' "
                    "(set node.id and node.cluster in the Envoy bootstrap)"
                )
            self.node_id = request.node.id
        if request.type_url and request.type_url != SECRET_TYPE_URL:
            raise SdsRequestError(
                f"type_url {request.type_url[:200]!r} is not served here; "
                f"expected {SECRET_TYPE_URL}"
            )

    def _check_name_count(self, count: int) -> None:
        if count > MAX_NAMES_PER_STREAM:
            raise SdsRequestError(
                f"a stream may watch at most {MAX_NAMES_PER_STREAM} resources, not {count}"
            )

    def _label(self) -> str:
        return f"{self.api} stream {self.stream_id} (node {self.node_id!r})"

    # --- names ---------------------------------------------------------------------------
    def _watch_name(self, name: str) -> bool:
        """Subscribe to ``name``; False (logged and counted) when it cannot be served."""
        if name in self._subscriptions:
            return True
        try:
            self._ctx.catalog.ensure(name)
        except UnknownResourceError as exc:
            self._ctx.metrics.sds_unknown_resources.labels(self.api).inc()
            if name not in self._unknown:
                self._unknown.add(name)
                _log.warning("%s: %s", self._label(), exc.message)
            return False
        self._unknown.discard(name)
        self._subscriptions[name] = self._watch(name)
        return True

    def _unwatch_name(self, name: str) -> None:
        subscription = self._subscriptions.pop(name, None)
        if subscription is not None:
            subscription.close()
        self._unknown.discard(name)
        self.acked.pop(name, None)
        self.sent.pop(name, None)
        self._rejected.pop(name, None)

    def on_request(self, request: Any) -> list[Any]:
        """Handle one request from Envoy; returns the responses to send."""
        raise NotImplementedError

    def on_change(self, name: str) -> list[Any]:
        """A watched secret changed in the cache; returns the responses to send."""
        raise NotImplementedError

    @property
    def watched(self) -> list[str]:
        return list(self._subscriptions)

    @property
    def unknown(self) -> frozenset[str]:
        return frozenset(self._unknown)

    def close(self) -> None:
        for subscription in self._subscriptions.values():
            subscription.close()
        self._subscriptions.clear()

    # --- content -------------------------------------------------------------------------
    def _desired(self, name: str) -> Secret | None:
        """What Envoy should hold for ``name`` now, or None when nothing good is available."""
        entry = self._ctx.cache.get(name)
        rejected = self._rejected.get(name, set())
        for candidate in (entry.secret if entry is not None else None, self.acked.get(name)):
            if candidate is None or candidate.fingerprint in rejected:
                continue
            if self._ctx.gate.allows(candidate):
                return candidate
        return None

    def _record_ack(self, sent: dict[str, Secret]) -> None:
        self.acked.update((n, s) for n, s in sent.items() if n in self._subscriptions)

    def _record_nack(self, sent: dict[str, Secret], detail: str) -> None:
        self._ctx.metrics.sds_nacks.labels(self.api).inc()
        for name, secret in sent.items():
            if self.acked.get(name) != secret:
                self._rejected.setdefault(name, set()).add(secret.fingerprint)
        described = ", ".join(s.describe() for s in sent.values())
        _log.warning(
            "%s: Envoy rejected (NACK) %s: %s; re-pushing the last good secret",
            self._label(),
            described or "a response",
            detail[:MAX_ERROR_DETAIL],
        )

    def _next_version(self) -> str:
        return str(next(self._ctx.versions))

    def _next_nonce(self) -> str:
        return f"n{next(self._ctx.nonces)}"
