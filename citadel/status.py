"""THE mapping from Citadel errors to gRPC status codes and short client messages.

Every gRPC surface of the project — the CA's CSR and agent APIs, the authz interceptors and
ext_authz, the node agent's SDS and Workload API — answers through :func:`status_for`.
The table is keyed by each error class's ``kind``; the lookup walks the class hierarchy and
uses the first kind it finds, so a new subclass inherits its parent's status until it gets
an entry of its own. Anything that is not a :class:`~citadel.errors.CitadelError` is
INTERNAL.

It lives at the package top so that the node agent can use it without importing the CA's
server, store or k8s code: it knows error *kinds* (strings), not their classes.

Clients get the short message. ``with_detail`` appends the error's own message (those
messages name the broken rule, never a secret); an empty short message sends the detail
alone. The log gets the full story.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc

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
            return f"{self.message}: {detail}" if self.message else detail
        return self.message

_C = grpc.StatusCode
_UNAUTHENTICATED = ErrorStatus(_C.UNAUTHENTICATED, "authentication failed")
_UNAVAILABLE = ErrorStatus(_C.UNAVAILABLE, "the CA cannot serve this request now; retry later")
_INTERNAL = ErrorStatus(_C.INTERNAL, "internal error")
_AUTHZ_FAILED = ErrorStatus(_C.INTERNAL, "authorization failed")


def _detail(code: grpc.StatusCode) -> ErrorStatus:
    """A status whose client message is the error's own (rule-naming, secret-free) text."""
    return ErrorStatus(code, "", True)


_BY_KIND: dict[str, ErrorStatus] = {
    # --- authentication and authorization (citadel.authz, citadel.server) ------------------
    "no_credential": ErrorStatus(_C.UNAUTHENTICATED, "no credential presented"),
    "credential_rejected": _UNAUTHENTICATED,
    "unauthenticated": ErrorStatus(_C.UNAUTHENTICATED, "unauthenticated"),
    "identity_mismatch": ErrorStatus(
        _C.PERMISSION_DENIED, "the CSR identity does not match the authenticated caller"
    ),
    "impersonation_denied": ErrorStatus(
        _C.PERMISSION_DENIED, "the caller may not request that identity"
    ),
    "permission_denied": ErrorStatus(_C.PERMISSION_DENIED, "permission denied"),
    "invalid_policy": ErrorStatus(_C.FAILED_PRECONDITION, "authorization failed"),
    "authz_error": _AUTHZ_FAILED,
    # --- malformed input --------------------------------------------------------------------
    "invalid_identity": ErrorStatus(_C.INVALID_ARGUMENT, "invalid request", True),
    "invalid_csr": ErrorStatus(_C.INVALID_ARGUMENT, "invalid CSR", True),
    "invalid_key": ErrorStatus(_C.INVALID_ARGUMENT, "key not allowed", True),
    "invalid_spiffe_id": ErrorStatus(_C.INVALID_ARGUMENT, "invalid SPIFFE ID", True),
    "invalid_jwt_svid": _detail(_C.INVALID_ARGUMENT),
    "invalid_ttl": ErrorStatus(_C.INVALID_ARGUMENT, "invalid lifetime", True),
    "invalid_request": ErrorStatus(_C.INVALID_ARGUMENT, "invalid request", True),
    "invalid_record": ErrorStatus(_C.INVALID_ARGUMENT, "invalid request", True),
    "request_too_large": ErrorStatus(_C.INVALID_ARGUMENT, "request too large", True),
    "request_unreadable": ErrorStatus(_C.INVALID_ARGUMENT, "request could not be read"),
    # --- limits -------------------------------------------------------------------------------
    "rate_limited": ErrorStatus(_C.RESOURCE_EXHAUSTED, "rate limit exceeded; retry later"),
    # --- not ready / dependencies down ------------------------------------------------------
    "ca_not_ready": _UNAVAILABLE,
    "store_unavailable": _UNAVAILABLE,
    "k8s_error": _UNAVAILABLE,
    "serving_certificate": _UNAVAILABLE,
    # --- the node agent: SDS -------------------------------------------------------------
    "invalid_sds_request": _detail(_C.INVALID_ARGUMENT),
    "unknown_resource": _detail(_C.NOT_FOUND),
    "invalid_secret": _detail(_C.UNAVAILABLE),
    # --- the node agent: Workload API ----------------------------------------------------
    "missing_security_header": _detail(_C.INVALID_ARGUMENT),
    "invalid_workload_request": _detail(_C.INVALID_ARGUMENT),
    "no_identity": _detail(_C.PERMISSION_DENIED),
    "unidentified_caller": ErrorStatus(_C.PERMISSION_DENIED, "caller is not identified"),
    "attestation_failed": ErrorStatus(_C.PERMISSION_DENIED, "caller could not be attested"),
    "ca_unreachable": ErrorStatus(_C.UNAVAILABLE, "identity provider is unavailable"),
    "ca_rejected": ErrorStatus(_C.UNAVAILABLE, "identity provider refused the request"),
    # --- CA lifecycle: rotation, plug-in and upstream CAs, revocation ----------------------
    "rotation_busy": ErrorStatus(_C.UNAVAILABLE, "another rotation step is running; retry"),
    "nothing_prepared": _detail(_C.FAILED_PRECONDITION),
    "already_prepared": _detail(_C.FAILED_PRECONDITION),
    "propagation_pending": _detail(_C.FAILED_PRECONDITION),
    "retire_refused": _detail(_C.FAILED_PRECONDITION),
    "nothing_to_retire": _detail(_C.FAILED_PRECONDITION),
    "nothing_to_roll_back": _detail(_C.FAILED_PRECONDITION),
    "external_authority": _detail(_C.FAILED_PRECONDITION),
    "invalid_plugin_ca": _detail(_C.INVALID_ARGUMENT),
    "invalid_upstream_import": _detail(_C.INVALID_ARGUMENT),
    "no_pending_key": _detail(_C.INVALID_ARGUMENT),
    "invalid_revocation_reason": _detail(_C.INVALID_ARGUMENT),
    "unknown_serial": _detail(_C.NOT_FOUND),
    "already_revoked": _detail(_C.ALREADY_EXISTS),
    "not_found": _detail(_C.NOT_FOUND),
    "conflict": _detail(_C.ALREADY_EXISTS),
    # --- everything else is INTERNAL -----------------------------------------------------------
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
            kind = cls.__dict__.get("kind")
            if isinstance(kind, str) and kind in _BY_KIND:
                return _BY_KIND[kind]
    return _INTERNAL
