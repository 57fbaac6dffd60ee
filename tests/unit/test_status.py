from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from citadel.authz import errors as authz_errors
from citadel.authz import grpc_status as authz_status
from citadel.ca.errors import CaNotReadyError, KeyManagerError, SigningError, TtlError
from citadel.errors import CitadelError
from citadel.identity.errors import InvalidCsrError, InvalidKeyError, InvalidSpiffeIdError
from citadel.k8s.errors import KubeApiThrottledError, KubeApiUnavailableError
from citadel.server import errors as server_errors
from citadel.status import status_for
from citadel.store.errors import StoreError, StoreUnavailableError, TokenRejectedError

C = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (server_errors.NoCredentialError("x"), C.UNAUTHENTICATED),
        (server_errors.CredentialRejectedError("x"), C.UNAUTHENTICATED),
        (authz_errors.TokenExpiredError("x"), C.UNAUTHENTICATED),
        (authz_errors.JwksUnavailableError("x"), C.UNAUTHENTICATED),
        (server_errors.IdentityMismatchError("x"), C.PERMISSION_DENIED),
        (server_errors.ImpersonationDeniedError("x"), C.PERMISSION_DENIED),
        (authz_errors.DefaultDenyError("x"), C.PERMISSION_DENIED),
        (InvalidCsrError("x"), C.INVALID_ARGUMENT),
        (InvalidKeyError("x"), C.INVALID_ARGUMENT),
        (InvalidSpiffeIdError("x"), C.INVALID_ARGUMENT),
        (TtlError("x"), C.INVALID_ARGUMENT),
        (server_errors.InvalidRequestError("x"), C.INVALID_ARGUMENT),
        (server_errors.RequestTooLargeError("x"), C.INVALID_ARGUMENT),
        (
            server_errors.RateLimitedError("x", retry_after=timedelta(1), scope="global"),
            C.RESOURCE_EXHAUSTED,
        ),
        (CaNotReadyError("x"), C.UNAVAILABLE),
        (StoreUnavailableError("x"), C.UNAVAILABLE),
        (KubeApiUnavailableError("x"), C.UNAVAILABLE),
        (KubeApiThrottledError("x"), C.UNAVAILABLE),
        (SigningError("x"), C.INTERNAL),
        (KeyManagerError("x"), C.INTERNAL),
        (StoreError("x"), C.INTERNAL),
        (TokenRejectedError("x"), C.INTERNAL),  # the authenticator turns it into a refusal
        (CitadelError("x"), C.INTERNAL),
        (RuntimeError("boom"), C.INTERNAL),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.name,
)
def test_each_error_maps_to_its_status_code(error: BaseException, code: grpc.StatusCode) -> None:
    assert status_for(error).code is code


def _subclasses(cls: type) -> list[type]:
    found: list[type] = []
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found.append(sub)
        found.extend(_subclasses(sub))
    return found


@pytest.mark.parametrize("cls", _subclasses(authz_errors.AuthzError), ids=lambda c: c.__name__)
def test_authz_errors_get_the_authz_layer_code(cls: type[authz_errors.AuthzError]) -> None:
    error = cls.__new__(cls)
    CitadelError.__init__(error, "detail")
    assert status_for(error).code is authz_status.grpc_code_for(error)


def test_a_new_subclass_inherits_its_parents_code() -> None:
    class OddCsrError(InvalidCsrError):
        kind = "odd_csr"

    assert status_for(OddCsrError("x")).code is C.INVALID_ARGUMENT


def test_client_messages_name_the_rule_but_hide_internal_detail() -> None:
    invalid = InvalidCsrError("CSR must carry exactly one URI SAN, found 2")
    assert status_for(invalid).client_message(invalid) == (
        "invalid CSR: CSR must carry exactly one URI SAN, found 2"
    )
    broken = SigningError("key handle 7 failed in module /opt/hsm.so")
    assert status_for(broken).client_message(broken) == "internal error"
    refused = server_errors.CredentialRejectedError("TokenReview user 'alice' is not an SA")
    assert "alice" not in status_for(refused).client_message(refused)


def test_client_detail_is_one_short_line() -> None:
    error = InvalidCsrError("line one\nline two " + "x" * 1000)
    message = status_for(error).client_message(error)
    assert "\n" not in message
    assert len(message) < 260


def test_node_agent_errors_are_mapped_by_the_same_table() -> None:
    from node_agent.errors import CaUnreachableError, SdsRequestError, UnknownResourceError
    from node_agent.workload_api.errors import MissingSecurityHeaderError, NoIdentityError

    cases = [
        (SdsRequestError("no node"), C.INVALID_ARGUMENT, "no node"),
        (UnknownResourceError("unknown resource 'x'"), C.NOT_FOUND, "unknown resource 'x'"),
        (MissingSecurityHeaderError("header missing"), C.INVALID_ARGUMENT, "header missing"),
        (NoIdentityError("no identity"), C.PERMISSION_DENIED, "no identity"),
        (
            CaUnreachableError("dial 10.0.0.1 failed"),
            C.UNAVAILABLE,
            "identity provider is unavailable",
        ),
    ]
    for error, code, message in cases:
        status = status_for(error)
        assert (status.code, status.client_message(error)) == (code, message)
