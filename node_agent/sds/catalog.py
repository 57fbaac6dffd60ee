"""Which resource names can be served, and the gate every secret passes before a push."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Protocol

from citadel.identity.clock import Clock
from node_agent.errors import SecretValidationError, UnknownResourceError
from node_agent.file_sources import FileSecretSources
from node_agent.metrics import AgentMetrics
from node_agent.resource_names import StaticName, parse_resource_name
from node_agent.secret_validation import ValidateSecret
from node_agent.secrets import Secret

__all__ = ["PushGate", "SecretCatalog"]

_log = logging.getLogger(__name__)


class SecretCatalog:
    """Resolves SDS names: static ones come from the rotator, file ones start a source."""

    def __init__(
        self, files: FileSecretSources | None, resolver: ResourceResolver | None = None
    ) -> None:
        self._files = files
        self._resolver = resolver

    def ensure(self, name: str) -> None:
        """Make ``name`` servable.

        Raises:
            UnknownResourceError: the name is not one the agent serves.
        """
        if self._resolver is not None and self._resolver.ensure(name):
            return
        resource = parse_resource_name(name)
        if isinstance(resource, StaticName):
            return
        if self._files is None:
            raise UnknownResourceError(
                f"resource {name[:200]!r}: file-mounted secrets are not enabled on this agent"
            )
        self._files.ensure(resource)


class ResourceResolver(Protocol):
    """Serves extra resource names (per-entry SPIFFE IDs, trust-domain IDs, ``ALL``)."""

    def ensure(self, name: str) -> bool:
        """Make ``name`` servable and return True, or return False if it is not ours."""
        ...


class PushGate:
    """Validates each secret right before it is pushed (at the current time).

    A failure is logged once per content (not once per stream) and counted.
    """

    def __init__(self, validator: ValidateSecret, clock: Clock, metrics: AgentMetrics) -> None:
        self._validate = validator
        self._clock = clock
        self._metrics = metrics
        self._reported: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def allows(self, secret: Secret) -> bool:
        try:
            self._validate(secret, self._clock.now())
        except SecretValidationError as exc:
            self._metrics.secrets_rejected.labels("sds").inc()
            key = f"{secret.name}:{secret.fingerprint}:{exc.message}"
            with self._lock:
                first = key not in self._reported
                self._reported[key] = None
                while len(self._reported) > 256:
                    self._reported.popitem(last=False)
            if first:
                _log.warning("not pushing secret %s: %s", secret.name[:200], exc.message)
            return False
        return True
