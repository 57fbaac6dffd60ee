"""The identity error tree: every error is a CitadelError with a stable kind."""

from __future__ import annotations

import pytest

from citadel.errors import CitadelError
from citadel.identity import errors

EXPECTED_KINDS = {
    "IdentityError": "invalid_identity",
    "InvalidSpiffeIdError": "invalid_spiffe_id",
    "InvalidTrustDomainError": "invalid_trust_domain",
    "InvalidKeyError": "invalid_key",
    "InvalidCsrError": "invalid_csr",
    "InvalidCertificateError": "invalid_certificate",
    "InvalidBundleError": "invalid_bundle",
    "ChainVerificationError": "chain_verification_failed",
}


def test_all_lists_every_error_class_sorted() -> None:
    assert sorted(errors.__all__) == list(errors.__all__)
    assert set(errors.__all__) == set(EXPECTED_KINDS)


@pytest.mark.parametrize(("name", "kind"), list(EXPECTED_KINDS.items()), ids=list(EXPECTED_KINDS))
def test_error_is_an_identity_error_with_its_kind_and_message(name: str, kind: str) -> None:
    cls = getattr(errors, name)
    error = cls("what went wrong")
    assert isinstance(error, errors.IdentityError)
    assert isinstance(error, CitadelError)
    assert error.kind == kind
    assert error.message == "what went wrong"
    assert str(error) == "what went wrong"


def test_trust_domain_errors_are_spiffe_id_errors() -> None:
    assert issubclass(errors.InvalidTrustDomainError, errors.InvalidSpiffeIdError)
