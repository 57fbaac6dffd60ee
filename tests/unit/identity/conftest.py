"""Fixtures shared by the identity tests: PKIs built once per module at the fixed time."""

from __future__ import annotations

import pytest

from citadel.identity.keys import KeyType
from tests.conftest import FIXED_NOW
from tests.fixtures.pki import Pki, make_pki


@pytest.fixture(scope="module")
def pki() -> Pki:
    """An EC P-256 PKI in trust domain example.org."""
    return make_pki("example.org", now=FIXED_NOW)


@pytest.fixture(scope="module")
def other_pki() -> Pki:
    """An unrelated PKI in another trust domain, other.org."""
    return make_pki("other.org", now=FIXED_NOW)


@pytest.fixture(
    scope="module",
    params=[KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048],
    ids=["ec-p256", "ec-p384", "rsa-2048"],
)
def any_pki(request: pytest.FixtureRequest) -> Pki:
    """The same PKI shape for every key type a CA may use."""
    key_type: KeyType = request.param
    return make_pki("example.org", now=FIXED_NOW, key_type=key_type)
