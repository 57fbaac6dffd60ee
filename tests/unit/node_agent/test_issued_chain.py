from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.csr import build_csr, csr_to_pem
from citadel.identity.keys import generate_private_key
from citadel.identity.spiffe_id import SpiffeId
from node_agent.credentials import CallAuth
from node_agent.errors import IssuedChainError
from node_agent.issued_chain import verify_issued_chain
from tests.fakes.fake_ca import FakeCa, FakeCaBehaviour, FakePki, make_fake_pki
from tests.unit.node_agent.conftest import WORKLOAD

ME = SpiffeId.parse(WORKLOAD)
NO_AUTH = CallAuth(kind="token_file")


def _ask(ca: FakeCa, key: object | None = None) -> tuple[list[str], object]:
    key = key or generate_private_key()
    chain = ca.create_certificate(
        csr_to_pem(build_csr(key, ME)),  # type: ignore[arg-type]
        ttl=timedelta(hours=1),
        auth=NO_AUTH,
        roots_pem=b"",
    )
    return chain, key


def test_good_chain_verifies_and_excludes_the_root(pki: FakePki, clock: ManualClock) -> None:
    ca = FakeCa(pki, clock)
    chain, key = _ask(ca)
    svid = verify_issued_chain(chain, expected=ME, key=key, roots=[pki.root], now=clock.now())  # type: ignore[arg-type]
    assert svid.spiffe_id == ME
    assert svid.intermediates == (pki.intermediate,)
    assert svid.not_after == clock.now() + timedelta(hours=1)


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        (FakeCaBehaviour(single_element=True), "chain of 1 element"),
        (
            FakeCaBehaviour(issue_for=SpiffeId.parse("spiffe://example.org/ns/x/sa/intruder")),
            "was requested",
        ),
        (FakeCaBehaviour(expired=True), "chain does not verify"),
        (FakeCaBehaviour(substitute_key=True), "public key"),
    ],
    ids=["one-element-chain", "wrong-identity", "expired-chain", "someone-elses-key"],
)
def test_bad_answer_from_the_ca_is_rejected(
    pki: FakePki, clock: ManualClock, behaviour: FakeCaBehaviour, message: str
) -> None:
    ca = FakeCa(pki, clock, behaviour)
    chain, key = _ask(ca)
    with pytest.raises(IssuedChainError, match=message):
        verify_issued_chain(chain, expected=ME, key=key, roots=[pki.root], now=clock.now())  # type: ignore[arg-type]


def test_chain_from_an_untrusted_ca_is_rejected(pki: FakePki, clock: ManualClock) -> None:
    foreign = make_fake_pki(around=[clock.now(), datetime.now(UTC)])
    ca = FakeCa(pki, clock, FakeCaBehaviour(foreign_pki=foreign))
    chain, key = _ask(ca)
    with pytest.raises(IssuedChainError, match="does not verify"):
        verify_issued_chain(chain, expected=ME, key=key, roots=[pki.root], now=clock.now())  # type: ignore[arg-type]


def test_garbage_element_is_rejected(pki: FakePki, clock: ManualClock) -> None:
    with pytest.raises(IssuedChainError, match="malformed"):
        verify_issued_chain(
            ["junk", "more junk"],
            expected=ME,
            key=generate_private_key(),
            roots=[pki.root],
            now=clock.now(),
        )
