"""THE mapping from Citadel errors to gRPC status codes and short client messages.

Every gRPC surface of the project answers through :func:`status_for`. The lookup walks the
error's class hierarchy and uses the first ``kind`` found in the table, so a new subclass
inherits its parent's code until it is given its own entry. Authz errors without an entry
of their own are answered by the authz layer's mapping (:mod:`citadel.authz.grpc_status`:
UNAUTHENTICATED, PERMISSION_DENIED, FAILED_PRECONDITION), which lives below this package and
is reused here, not duplicated. Anything that is not a :class:`~citadel.errors.CitadelError`
is an INTERNAL error.

Clients get the short ``message``; when ``with_detail`` is set the error's own message is
appended (those messages name the broken rule, never a secret). The log gets the full story.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from citadel.authz import grpc_status as authz_status
from citadel.authz.errors import AuthzError
from citadel.errors import CitadelError

__all__ = ["ErrorStatus", "status_for"]

_MAX_DETAIL = 200


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    code: grpc.StatusCode
    message: str
    with_detail: bool = False

    def client_message(self, error: BaseException) -> str:
        if self.with_detail and isinstance(error, CitadelError) and error.message:
            detail = " ".join(error.message.split())[:_MAX_DETAIL]
            return f"{self.message}: {detail}"
        return self.message


_C = grpc.StatusCode
_UNAUTHENTICATED = ErrorStatus(_C.UNAUTHENTICATED, "authentication failed")
_UNAVAILABLE = ErrorStatus(_C.UNAVAILABLE, "the CA cannot serve this request now; retry later")
_INTERNAL = ErrorStatus(_C.INTERNAL, "internal error")

_BY_KIND: dict[str, ErrorStatus] = {
    # --- the server's own authz subclasses (the rest: citadel.authz.grpc_status) ----------
    "no_credential": ErrorStatus(_C.UNAUTHENTICATED, "no credential presented"),
    "credential_rejected": _UNAUTHENTICATED,
    "identity_mismatch": ErrorStatus(
        _C.PERMISSION_DENIED, "the CSR identity does not match the authenticated caller"
    ),
    "impersonation_denied": ErrorStatus(
        _C.PERMISSION_DENIED, "the caller may not request that identity"
    ),
    # --- malformed input --------------------------------------------------------------------
    "invalid_identity": ErrorStatus(_C.INVALID_ARGUMENT, "invalid request", True),
    "invalid_csr": ErrorStatus(_C.INVALID_ARGUMENT, "invalid CSR", True),
    "invalid_key": ErrorStatus(_C.INVALID_ARGUMENT, "key not allowed", True),
    "invalid_spiffe_id": ErrorStatus(_C.INVALID_ARGUMENT, "invalid SPIFFE ID", True),
    "invalid_ttl": ErrorStatus(_C.INVALID_ARGUMENT, "invalid lifetime", True),
    "invalid_request": ErrorStatus(_C.INVALID_ARGUMENT, "invalid request", True),
    "request_too_large": ErrorStatus(_C.INVALID_ARGUMENT, "request too large", True),
    "request_unreadable": ErrorStatus(_C.INVALID_ARGUMENT, "request could not be read"),
    # --- limits -------------------------------------------------------------------------------
    "rate_limited": ErrorStatus(_C.RESOURCE_EXHAUSTED, "rate limit exceeded; retry later"),
    # --- not ready / dependencies down ------------------------------------------------------
    "ca_not_ready": _UNAVAILABLE,
    "store_unavailable": _UNAVAILABLE,
    "k8s_error": _UNAVAILABLE,
    "serving_certificate": _UNAVAILABLE,
    # --- everything else the server cannot do is INTERNAL -----------------------------------
    "signing_failed": _INTERNAL,
    "key_manager": _INTERNAL,
    "store_error": _INTERNAL,
    "ca_error": _INTERNAL,
    "internal": _INTERNAL,
}


def status_for(error: BaseException) -> ErrorStatus:
    """The status for ``error`` (INTERNAL for anything unexpected)."""
    if isinstance(error, CitadelError):
        for cls in type(error).__mro__:
            if cls is AuthzError:
                assert isinstance(error, AuthzError)
                return ErrorStatus(
                    authz_status.grpc_code_for(error), authz_status.client_message(error)
                )
            kind = cls.__dict__.get("kind")
            if isinstance(kind, str) and kind in _BY_KIND:
                return _BY_KIND[kind]
    return _INTERNAL
