"""The public surface of citadel.store and its error kinds."""

from __future__ import annotations

import pytest

import citadel.store
from citadel.errors import CitadelError
from citadel.store import errors


def test_all_is_sorted_and_every_name_exists() -> None:
    exported = citadel.store.__all__
    assert exported == sorted(exported)
    assert all(hasattr(citadel.store, name) for name in exported)


def test_every_error_class_is_exported() -> None:
    assert set(errors.__all__) <= set(citadel.store.__all__)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("StoreError", "store_error"),
        ("StoreUnavailableError", "store_unavailable"),
        ("NotFoundError", "not_found"),
        ("ConflictError", "conflict"),
        ("AuditChainError", "audit_broken"),
        ("TokenRejectedError", "token_rejected"),
        ("InvalidRecordError", "invalid_record"),
    ],
    ids=lambda v: str(v),
)
def test_error_kinds_are_stable_labels(name: str, kind: str) -> None:
    error_class = getattr(errors, name)
    assert error_class.kind == kind
    assert issubclass(error_class, errors.StoreError)
    assert issubclass(error_class, CitadelError)


def test_invalid_record_is_also_a_value_error() -> None:
    assert issubclass(errors.InvalidRecordError, ValueError)
