"""Errors of the CA-material Secrets (the API-level errors are in :mod:`citadel.k8s.errors`).

    K8sError                              ("k8s_error", citadel.k8s.errors)
    ├── CaSecretError                     ("ca_secret_invalid")   a CA Secret cannot be used
    │   ├── CaSecretNotFoundError         ("ca_secret_not_found")
    │   └── CaSecretMissingKeyError       ("ca_secret_missing_key")
    └── CaSecretConflictError             ("ca_secret_conflict")  another replica wrote first

The controllers and elections never raise on API trouble (they retry); the readers and stores
raise :class:`~citadel.k8s.errors.KubeApiUnavailableError` /
:class:`~citadel.k8s.errors.KubeApiRejectedError` from :mod:`citadel.k8s.api_errors`. The
mapping of kinds to gRPC status codes lives in :mod:`citadel.status`.
"""

from __future__ import annotations

from citadel.k8s.errors import K8sError

__all__ = [
    "CaSecretConflictError",
    "CaSecretError",
    "CaSecretMissingKeyError",
    "CaSecretNotFoundError",
]


class CaSecretError(K8sError, ValueError):
    """A Secret holding CA material is unusable (bad encoding, bad PEM, key/cert mismatch)."""

    kind = "ca_secret_invalid"


class CaSecretNotFoundError(CaSecretError):
    kind = "ca_secret_not_found"


class CaSecretMissingKeyError(CaSecretError):
    """A required data key is absent or empty; ``key`` names it."""

    kind = "ca_secret_missing_key"

    def __init__(self, *, secret: str, key: str) -> None:
        super().__init__(f"Secret {secret} has no {key!r} entry (required)")
        self.secret = secret
        self.key = key


class CaSecretConflictError(K8sError):
    """The CA Secret was created or changed by another writer since we read it."""

    kind = "ca_secret_conflict"
