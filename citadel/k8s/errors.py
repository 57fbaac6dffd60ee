"""Errors of the Kubernetes API clients.

    K8sError                    "k8s_error"
    ├── KubeApiUnavailableError "kube_api_unavailable"  unreachable, timed out, 5xx, 429
    ├── KubeApiRejectedError    "kube_api_rejected"     the API server refused our call (4xx)
    ├── KubeApiThrottledError   "kube_api_throttled"    our client-side rate limit refused it
    └── KubeConfigError         "invalid_kube_config"   host, token file or CA file unusable

None of these says anything about the reviewed token: a token the API server does not accept
is a normal :class:`~citadel.k8s.token_review.TokenReviewResult`, not an error.
"""

from __future__ import annotations

from citadel.errors import CitadelError

__all__ = [
    "K8sError",
    "KubeApiRejectedError",
    "KubeApiThrottledError",
    "KubeApiUnavailableError",
    "KubeConfigError",
]


class K8sError(CitadelError):
    kind = "k8s_error"


class KubeApiUnavailableError(K8sError):
    kind = "kube_api_unavailable"


class KubeApiRejectedError(K8sError):
    """The API server answered with a client error for our own request.

    Attributes:
        status: the HTTP status code.
    """

    kind = "kube_api_rejected"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class KubeApiThrottledError(K8sError):
    kind = "kube_api_throttled"


class KubeConfigError(K8sError, ValueError):
    kind = "invalid_kube_config"
