from __future__ import annotations

import inspect

import grpc
import pytest

from citadel.authz import errors
from citadel.authz.errors import AccessDeniedError, AuthenticationError, AuthzError
from citadel.authz.grpc_status import client_message, grpc_code_for, http_status_for

_ALL = [
    cls
    for _, cls in inspect.getmembers(errors, inspect.isclass)
    if issubclass(cls, AuthzError) and cls.__module__ == errors.__name__
]


def _instance(cls: type[AuthzError]) -> AuthzError:
    if cls is errors.PolicyError:
        return errors.PolicyError("file.yaml", "spec", "bad")
    return cls("detail")


@pytest.mark.parametrize("cls", _ALL, ids=[c.__name__ for c in _ALL])
def test_every_error_maps_to_one_status(cls: type[AuthzError]) -> None:
    error = _instance(cls)
    code = grpc_code_for(error)
    if issubclass(cls, AuthenticationError):
        assert (code, http_status_for(error), client_message(error)) == (
            grpc.StatusCode.UNAUTHENTICATED,
            401,
            "unauthenticated",
        )
    elif issubclass(cls, AccessDeniedError):
        assert (code, http_status_for(error), client_message(error)) == (
            grpc.StatusCode.PERMISSION_DENIED,
            403,
            "permission denied",
        )
    else:
        assert http_status_for(error) == 500
        assert code in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INTERNAL)


def test_every_error_kind_is_unique_and_lowercase() -> None:
    kinds = [cls.kind for cls in _ALL]
    assert len(kinds) == len(set(kinds))
    assert all(k == k.lower() and " " not in k for k in kinds)


def test_policy_error_message_names_file_and_field() -> None:
    error = errors.PolicyError("p.yaml", "spec.rules[0]", "bad thing")
    assert str(error) == "p.yaml: spec.rules[0]: bad thing"
    assert (error.source, error.field, error.problem) == ("p.yaml", "spec.rules[0]", "bad thing")
