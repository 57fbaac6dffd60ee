from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.server.authn.join_token import JoinTokenAuthenticator
from citadel.server.call_context import CallContext
from citadel.server.errors import CredentialRejectedError
from citadel.server.join_tokens import create_join_token, hash_join_token
from citadel.store.repository import Repository

TD = TrustDomain("cluster.local")
VM = SpiffeId.parse("spiffe://cluster.local/ns/vm/sa/db")


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    repository = Repository.open(f"sqlite:///{tmp_path / 'citadel.db'}")
    yield repository
    repository.close()


def _authenticator(repository: Repository, clock: ManualClock) -> JoinTokenAuthenticator:
    return JoinTokenAuthenticator(store=repository, trust_domain=TD, clock=clock)


def _bearer(token: str) -> CallContext:
    return CallContext.from_metadata([("authorization", f"Bearer jt.{token}")])


def test_token_works_once(repository: Repository, clock: ManualClock) -> None:
    created = create_join_token(repository, spiffe_id=VM, ttl=timedelta(minutes=5), clock=clock)
    authenticator = _authenticator(repository, clock)
    caller = authenticator.authenticate(_bearer(created.token))
    assert caller is not None
    assert caller.identity == VM
    assert caller.kind == "join_token"
    assert created.token not in caller.detail
    with pytest.raises(CredentialRejectedError):
        authenticator.authenticate(_bearer(created.token))


def test_token_in_the_dedicated_metadata_key(repository: Repository, clock: ManualClock) -> None:
    created = create_join_token(repository, spiffe_id=VM, ttl=timedelta(minutes=5), clock=clock)
    call = CallContext.from_metadata([("citadel-join-token", created.token)])
    caller = _authenticator(repository, clock).authenticate(call)
    assert caller is not None
    assert caller.identity == VM


def test_expired_token_is_refused(repository: Repository, clock: ManualClock) -> None:
    created = create_join_token(repository, spiffe_id=VM, ttl=timedelta(minutes=5), clock=clock)
    clock.advance(timedelta(minutes=5))
    with pytest.raises(CredentialRejectedError):
        _authenticator(repository, clock).authenticate(_bearer(created.token))


@pytest.mark.parametrize(
    "token",
    ["short", "x" * 200, "has space in it but is long enough to pass length"],
    ids=["too-short", "too-long", "bad-characters"],
)
def test_malformed_token_is_refused_without_a_lookup(
    repository: Repository, clock: ManualClock, token: str
) -> None:
    with pytest.raises(CredentialRejectedError, match="malformed"):
        _authenticator(repository, clock).authenticate(_bearer(token))


def test_unknown_token_is_refused(repository: Repository, clock: ManualClock) -> None:
    with pytest.raises(CredentialRejectedError, match="unknown, used or expired"):
        _authenticator(repository, clock).authenticate(_bearer("A" * 43))


def test_two_tokens_in_one_call_are_refused(repository: Repository, clock: ManualClock) -> None:
    call = CallContext.from_metadata(
        [("authorization", "Bearer jt." + "A" * 43), ("citadel-join-token", "B" * 43)]
    )
    with pytest.raises(CredentialRejectedError, match="more than one"):
        _authenticator(repository, clock).authenticate(call)


def test_other_bearer_tokens_are_not_join_tokens(
    repository: Repository, clock: ManualClock
) -> None:
    call = CallContext.from_metadata([("authorization", "Bearer eyJ.eyJ.sig")])
    assert _authenticator(repository, clock).authenticate(call) is None


def test_only_the_hash_is_stored_and_creation_is_audited(
    repository: Repository, clock: ManualClock
) -> None:
    created = create_join_token(repository, spiffe_id=VM, ttl=timedelta(minutes=5), clock=clock)
    assert created.token_hash == hash_join_token(created.token)
    assert created.token not in repr(created)
    events = repository.list_audit(after_seq=0, limit=10)
    assert events[-1].action == "join_token_create"
    assert created.token not in str(events[-1].payload)


@pytest.mark.parametrize(
    ("spiffe_id", "ttl"),
    [
        (VM, timedelta(0)),
        (VM, timedelta(days=31)),
        (SpiffeId.parse("spiffe://cluster.local"), timedelta(minutes=5)),
    ],
    ids=["zero-ttl", "ttl-too-long", "no-path"],
)
def test_unusable_token_requests_are_refused(
    repository: Repository, clock: ManualClock, spiffe_id: SpiffeId, ttl: timedelta
) -> None:
    with pytest.raises(ValueError):
        create_join_token(repository, spiffe_id=spiffe_id, ttl=ttl, clock=clock)
