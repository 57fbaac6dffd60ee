"""GetBundle's names: the roots' version (as the CA counts acks) and the answer's state."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from citadel.ca.rotation.acks import bundle_version
from citadel.identity.bundle import TrustBundle
from citadel.identity.spiffe_id import TrustDomain
from citadel.server.agent_bundle import bundle_answer, checked_token
from citadel.server.agent_errors import AgentRequestError
from tests.conftest import FIXED_NOW
from tests.fakes.fake_ca import FakePki, make_fake_pki

TD = TrustDomain("example.org")


@pytest.fixture(scope="module")
def pkis() -> tuple[FakePki, FakePki]:
    around = [FIXED_NOW, datetime.now(UTC)]
    return make_fake_pki(around=around), make_fake_pki(around=around)


def test_the_version_names_the_roots_like_the_ack_counter(pkis: tuple[FakePki, FakePki]) -> None:
    roots = (pkis[0].root, pkis[1].root)
    answer = bundle_answer(TrustBundle(TD, roots), [b"crl"])
    assert answer.bundle_version == bundle_version(roots)


def test_the_state_ignores_the_per_process_sequence(pkis: tuple[FakePki, FakePki]) -> None:
    roots = (pkis[0].root,)
    one = bundle_answer(TrustBundle(TD, roots, sequence=1), [b"a"])
    other_worker = bundle_answer(TrustBundle(TD, roots, sequence=7), [b"a"])
    assert one.state == other_worker.state


def test_the_state_changes_with_crls_and_roots(pkis: tuple[FakePki, FakePki]) -> None:
    base = bundle_answer(TrustBundle(TD, (pkis[0].root,)), [b"a"])
    assert bundle_answer(TrustBundle(TD, (pkis[0].root,)), [b"b"]).state != base.state
    assert bundle_answer(TrustBundle(TD, (pkis[0].root,)), []).state != base.state
    assert bundle_answer(TrustBundle(TD, (pkis[0].root, pkis[1].root)), [b"a"]).state != (
        base.state
    )


@pytest.mark.parametrize("value", ["", "0123abcd", "f" * 64], ids=["empty", "short", "longest"])
def test_hex_names_are_accepted(value: str) -> None:
    assert checked_token("known_state", value) == value


@pytest.mark.parametrize(
    "value",
    ["ABC", "f" * 65, "12 34", "xyz", "\u0661\u0662"],
    ids=["upper", "long", "space", "letters", "digits"],
)
def test_anything_else_is_an_invalid_request(value: str) -> None:
    with pytest.raises(AgentRequestError, match="known_state"):
        checked_token("known_state", value)
