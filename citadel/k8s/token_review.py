"""Kubernetes TokenReview through the official ``kubernetes`` client.

Where the API server is and how we authenticate to it comes from :mod:`citadel.k8s.client`;
this module only asks ``POST /apis/authentication.k8s.io/v1/tokenreviews`` and reads the
answer. A throttle can be put in front of every call (the ``kubernetes`` package has no
QPS limiter of its own).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException, OpenApiException

from citadel.k8s.api_errors import TRANSPORT_ERRORS, translate_api_error
from citadel.k8s.errors import KubeApiThrottledError, KubeApiUnavailableError

__all__ = ["Throttle", "TokenReviewClient", "TokenReviewResult"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TokenReviewResult:
    """What the API server said about a token (the ``status`` of the TokenReview)."""

    authenticated: bool
    username: str = ""
    uid: str = ""
    groups: tuple[str, ...] = ()
    audiences: tuple[str, ...] = ()
    error: str = ""


class Throttle(Protocol):
    def acquire(self) -> bool:
        """Wait for permission to call; False means the call must not be made."""
        ...


class TokenReviewClient:
    """Asks the API server whether a token is valid for some audiences. Thread-safe.

    Args:
        configuration: from :func:`citadel.k8s.client.build_configuration` (or
            ``load_configuration``). Retries are turned off on it: one review is one request,
            bounded by ``timeout``.
        timeout: per request (connect + read).
        throttle: consulted before each request.
    """

    def __init__(
        self,
        configuration: k8s.Configuration,
        *,
        timeout: timedelta = timedelta(seconds=5),
        throttle: Throttle | None = None,
    ) -> None:
        if timeout <= timedelta(0):
            raise ValueError("timeout must be positive")
        configuration.retries = 0
        self._throttle = throttle
        self._api_client = k8s.ApiClient(configuration)
        self._api = k8s.AuthenticationV1Api(self._api_client)
        self._timeout = timeout.total_seconds()

    def review(self, token: str, audiences: Sequence[str]) -> TokenReviewResult:
        """POST a TokenReview and return its status.

        Raises:
            KubeApiThrottledError: the client-side throttle refused the call.
            KubeApiUnavailableError: unreachable, timed out, 429/5xx, or an unreadable answer.
            KubeApiRejectedError: the API server refused our own request (401, 403, other 4xx).
        """
        if self._throttle is not None and not self._throttle.acquire():
            raise KubeApiThrottledError("TokenReview refused by the client-side QPS limit")
        body = k8s.V1TokenReview(
            api_version="authentication.k8s.io/v1",
            kind="TokenReview",
            spec=k8s.V1TokenReviewSpec(token=token, audiences=list(audiences) or None),
        )
        try:
            answer = self._api.create_token_review(body, _request_timeout=self._timeout)
        except ApiException as exc:
            if not exc.status:  # the client could not read the answer at all
                raise KubeApiUnavailableError("TokenReview answer is unreadable") from exc
            raise translate_api_error(exc, "create a TokenReview") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate_api_error(exc, "create a TokenReview") from exc
        except (OpenApiException, ValueError, TypeError) as exc:
            raise KubeApiUnavailableError("TokenReview answer is unreadable") from exc
        return _result(answer)

    def close(self) -> None:
        self._api_client.close()  # type: ignore[no-untyped-call]


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in values or () if isinstance(v, str))


def _result(answer: Any) -> TokenReviewResult:
    status = getattr(answer, "status", None)
    if status is None:
        return TokenReviewResult(authenticated=False, error="TokenReview answer has no status")
    user = getattr(status, "user", None)
    return TokenReviewResult(
        authenticated=getattr(status, "authenticated", None) is True,
        username=str(getattr(user, "username", None) or ""),
        uid=str(getattr(user, "uid", None) or ""),
        groups=_strings(getattr(user, "groups", None)),
        audiences=_strings(getattr(status, "audiences", None)),
        error=str(getattr(status, "error", None) or ""),
    )
