from __future__ import annotations

from dataclasses import dataclass

import pytest

from citadel.identity.spiffe_id import SpiffeId
from citadel.k8s.errors import KubeApiUnavailableError
from citadel.server.authn.base import Authenticator, Caller
from citadel.server.authn.chain import AuthenticatorChain
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError, NoCredentialError

ALICE = Caller(identity=SpiffeId.parse("spiffe://td/ns/a/sa/alice"), kind="k8s")
BOB = Caller(identity=SpiffeId.parse("spiffe://td/ns/a/sa/bob"), kind="oidc")


@dataclass
class Scripted:
    """An authenticator whose verdict is fixed by the test; it records being asked."""

    name: str
    verdict: Caller | Exception | None
    asked: int = 0

    def authenticate(self, call: CallContext) -> Caller | None:
        self.asked += 1
        if isinstance(self.verdict, Exception):
            raise self.verdict
        return self.verdict


def _chain(*authenticators: Authenticator) -> AuthenticatorChain:
    return AuthenticatorChain(list(authenticators))


def test_first_success_wins_and_later_authenticators_are_not_asked() -> None:
    later = Scripted("later", BOB)
    assert (
        _chain(Scripted("none", None), Scripted("first", ALICE), later).authenticate(CallContext())
        == ALICE
    )
    assert later.asked == 0


def test_a_refusal_does_not_stop_the_next_authenticator() -> None:
    chain = _chain(Scripted("k8s", CredentialRejectedError("no")), Scripted("oidc", BOB))
    assert chain.authenticate(CallContext()) == BOB


def test_the_first_refusal_is_reported_when_nobody_accepts() -> None:
    first = CredentialRejectedError("first")
    chain = _chain(Scripted("a", first), Scripted("b", CredentialRejectedError("second")))
    with pytest.raises(CredentialRejectedError) as caught:
        chain.authenticate(CallContext())
    assert caught.value is first


def test_an_outage_wins_over_refusals_so_the_caller_retries() -> None:
    outage = KubeApiUnavailableError("down")
    chain = _chain(Scripted("k8s", outage), Scripted("oidc", CredentialRejectedError("iss")))
    with pytest.raises(KubeApiUnavailableError):
        chain.authenticate(CallContext())


def test_no_credential_at_all_is_its_own_error() -> None:
    with pytest.raises(NoCredentialError):
        _chain(Scripted("a", None), Scripted("b", None)).authenticate(CallContext())


def test_an_empty_chain_is_a_configuration_error() -> None:
    with pytest.raises(ValueError):
        AuthenticatorChain([])


def test_unexpected_exceptions_are_not_swallowed() -> None:
    with pytest.raises(ZeroDivisionError):
        _chain(Scripted("bug", ZeroDivisionError()), Scripted("b", ALICE)).authenticate(
            CallContext()
        )
