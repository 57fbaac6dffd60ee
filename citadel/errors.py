"""The root of Citadel's exception tree.

Every package adds its own ``errors.py`` whose classes subclass :class:`CitadelError`.
An error names a *kind* (a short string, also the metric label); the mapping from kind
to a gRPC status code lives in exactly one place, :mod:`citadel.status`.

    CitadelError
    ├── citadel.identity.errors.IdentityError   (bad SPIFFE IDs, CSRs, certificates, bundles)
    ├── citadel.ca.errors.CaError               (not ready, TTL, signing, key manager)
    ├── citadel.store.errors.StoreError         (unavailable, conflict, not found, integrity)
    ├── citadel.authz.errors.AuthzError         (policy load, authentication, denial)
    └── node_agent.errors.AgentError            (CA unreachable, bad secret, config)
"""

from __future__ import annotations

__all__ = ["CitadelError"]


class CitadelError(Exception):
    """Base class of every error Citadel raises on purpose.

    Attributes:
        kind: a short, stable, lowercase label (``"invalid_csr"``); used as the metric
            label and as the key of the status-code mapping.
    """

    kind: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
