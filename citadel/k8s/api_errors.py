"""Classify failures of the ``kubernetes`` client and turn them into typed errors.

The client raises :class:`kubernetes.client.exceptions.ApiException` for HTTP errors and
``urllib3``/``OSError`` exceptions for transport failures. Everything here works on the status
code only: response bodies are never put into messages (a Secret's body holds key material).
"""

from __future__ import annotations

from http import HTTPStatus

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from citadel.k8s.errors import K8sError, KubeApiRejectedError, KubeApiUnavailableError

__all__ = [
    "TRANSPORT_ERRORS",
    "api_status",
    "describe_failure",
    "is_conflict",
    "is_gone",
    "is_not_found",
    "is_retryable",
    "translate_api_error",
]

# What a request can raise besides ApiException when the connection fails or drops.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (urllib3.exceptions.HTTPError, OSError)

_RETRYABLE_STATUSES = frozenset(
    {
        HTTPStatus.TOO_MANY_REQUESTS,
        HTTPStatus.INTERNAL_SERVER_ERROR,
        HTTPStatus.BAD_GATEWAY,
        HTTPStatus.SERVICE_UNAVAILABLE,
        HTTPStatus.GATEWAY_TIMEOUT,
    }
)


def api_status(exc: BaseException) -> int | None:
    """The HTTP status of an ApiException, else None."""
    if isinstance(exc, ApiException) and isinstance(exc.status, int):
        return exc.status
    return None


def is_not_found(exc: BaseException) -> bool:
    return api_status(exc) == HTTPStatus.NOT_FOUND


def is_conflict(exc: BaseException) -> bool:
    """409: a stale resourceVersion on update, or AlreadyExists on create."""
    return api_status(exc) == HTTPStatus.CONFLICT


def is_gone(exc: BaseException) -> bool:
    """410: the resourceVersion a watch resumed from is too old; list again."""
    return api_status(exc) == HTTPStatus.GONE


def is_retryable(exc: BaseException) -> bool:
    """True for transport failures and for 429/5xx answers."""
    status = api_status(exc)
    if status is not None:
        return status in _RETRYABLE_STATUSES or status >= 500
    return isinstance(exc, TRANSPORT_ERRORS)


def describe_failure(exc: BaseException) -> str:
    """A short, log-safe description: the status and reason, or the transport error type."""
    if isinstance(exc, ApiException):
        reason = str(exc.reason or "")[:80]
        return f"HTTP {exc.status} {reason}".strip()
    return type(exc).__name__


def translate_api_error(exc: BaseException, what: str) -> K8sError:
    """Map a client failure to :class:`KubeApiUnavailableError` or :class:`KubeApiRejectedError`.

    ``what`` names the operation ("read Secret citadel-system/cacerts").
    """
    status = api_status(exc)
    message = f"cannot {what}: {describe_failure(exc)}"
    if status is None or is_retryable(exc):
        return KubeApiUnavailableError(message)
    return KubeApiRejectedError(message, status=status)
