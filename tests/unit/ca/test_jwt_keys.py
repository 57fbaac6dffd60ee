"""The CA's JWT-SVID key set: kid on every key, ES256 by default, rotation with overlap."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from citadel.ca.errors import CaNotReadyError
from citadel.ca.jwt_keys import JWT_KIND, JwtKeyPolicy, JwtKeySet, published_jwt_authorities
from citadel.ca.keymanager.memory import MemoryKeyManager
from citadel.identity.clock import ManualClock
from citadel.identity.jwt_errors import UnknownJwtKeyError
from citadel.identity.jwt_svid import validate_jwt_svid
from citadel.identity.spiffe_id import SpiffeId
from citadel.store import Repository

WEB = SpiffeId.parse("spiffe://cluster.local/ns/shop/sa/web")


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[Repository]:
    repository = Repository.open(f"sqlite:///{tmp_path / 'citadel.db'}")
    try:
        yield repository
    finally:
        repository.close()


@pytest.fixture
def keys(repository: Repository, clock: ManualClock) -> JwtKeySet:
    return JwtKeySet(store=repository, key_manager=MemoryKeyManager(), clock=clock)


def header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return value


def test_first_use_creates_one_active_es256_key_whose_kid_is_on_every_token(
    keys: JwtKeySet, repository: Repository, clock: ManualClock
) -> None:
    minted = keys.mint(WEB, ["billing"])
    [record] = repository.list_authorities(kind=JWT_KIND)
    assert record.state == "active" and record.id == minted.key_id
    assert header(minted.token) == {"alg": "ES256", "kid": record.id, "typ": "JWT"}
    [authority] = keys.authorities()
    assert authority.key_id == record.id
    svid = validate_jwt_svid(minted.token, "billing", keys.authorities(), now=clock.now())
    assert svid.spiffe_id == WEB
    assert minted.expires_at == clock.now() + timedelta(minutes=5)
    assert [e.action for e in repository.list_audit()] == ["jwt_key_active"]


def test_the_next_key_is_published_at_half_life_before_it_signs(
    keys: JwtKeySet, clock: ManualClock
) -> None:
    current = keys.mint(WEB, ["a"]).key_id
    clock.advance(timedelta(hours=12))
    published = [a.key_id for a in keys.authorities()]
    assert len(published) == 2 and published[0] == current
    assert keys.mint(WEB, ["a"]).key_id == current  # still the current key signing


def test_after_activation_old_tokens_still_validate_during_the_overlap(
    keys: JwtKeySet, clock: ManualClock
) -> None:
    keys.maintain()
    clock.advance(timedelta(hours=12))
    keys.maintain()
    clock.advance(timedelta(hours=8) - timedelta(minutes=1))
    old = keys.mint(WEB, ["billing"])
    clock.advance(timedelta(minutes=2))  # past the activation point
    new = keys.mint(WEB, ["billing"])
    assert new.key_id != old.key_id
    jwks = keys.authorities()
    assert {a.key_id for a in jwks} == {old.key_id, new.key_id}
    for token in (old.token, new.token):
        assert validate_jwt_svid(token, "billing", jwks, now=clock.now()).spiffe_id == WEB


def test_a_retired_key_leaves_the_jwks_at_its_not_after(
    keys: JwtKeySet, repository: Repository, clock: ManualClock
) -> None:
    first = keys.mint(WEB, ["a"]).key_id
    for step in (timedelta(hours=12), timedelta(hours=8, minutes=1)):
        clock.advance(step)
        keys.maintain()
    states = {r.id: r.state for r in repository.list_authorities(kind=JWT_KIND)}
    assert states[first] == "retired"
    clock.advance(timedelta(hours=4))  # the first key's not_after has passed
    old_token = keys.mint(WEB, ["a"])
    jwks = keys.authorities()
    assert first not in {a.key_id for a in jwks}
    assert old_token.key_id in {a.key_id for a in jwks}


def test_a_stale_token_of_a_dropped_key_is_refused(keys: JwtKeySet, clock: ManualClock) -> None:
    old = keys.mint(WEB, ["a"], ttl=timedelta(hours=1))
    clock.advance(timedelta(hours=25))
    keys.maintain()
    with pytest.raises(UnknownJwtKeyError):
        validate_jwt_svid(
            old.token, "a", keys.authorities(), now=clock.now(), leeway=timedelta(days=2)
        )


def test_two_ca_processes_sharing_a_database_sign_with_the_same_key(
    repository: Repository, clock: ManualClock
) -> None:
    manager = MemoryKeyManager()  # both replicas reach the same key store
    first = JwtKeySet(store=repository, key_manager=manager, clock=clock)
    second = JwtKeySet(store=repository, key_manager=manager, clock=clock)
    assert first.mint(WEB, ["a"]).key_id == second.mint(WEB, ["a"]).key_id
    assert len(repository.list_authorities(kind=JWT_KIND)) == 1


def test_a_process_holding_no_lock_uses_the_keys_another_one_stored(
    repository: Repository, clock: ManualClock
) -> None:
    manager = MemoryKeyManager()
    first = JwtKeySet(store=repository, key_manager=manager, clock=clock)
    first.maintain()
    assert repository.try_acquire_lock(
        "jwt-keys", "someone-else", timedelta(minutes=5), clock.now()
    )
    second = JwtKeySet(store=repository, key_manager=manager, clock=clock)
    assert second.mint(WEB, ["a"]).key_id == first.mint(WEB, ["a"]).key_id


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        (timedelta(0), "positive"),
        (timedelta(hours=2), "at most"),
        (-timedelta(seconds=1), "positive"),
    ],
    ids=["zero", "above-maximum", "negative"],
)
def test_a_token_lifetime_out_of_bounds_is_refused(
    keys: JwtKeySet, ttl: timedelta, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        keys.mint(WEB, ["a"], ttl=ttl)


def test_no_audience_is_refused(keys: JwtKeySet) -> None:
    with pytest.raises(ValueError, match="audience"):
        keys.mint(WEB, [])


def test_a_policy_whose_keys_would_retire_before_their_tokens_expire_is_refused() -> None:
    with pytest.raises(ValueError, match="six times"):
        JwtKeyPolicy(key_lifetime=timedelta(hours=1), max_token_ttl=timedelta(minutes=20))


def test_a_damaged_stored_public_key_is_reported(
    keys: JwtKeySet, repository: Repository, clock: ManualClock
) -> None:
    keys.maintain()
    [record] = repository.list_authorities(kind=JWT_KIND)
    damaged = record.__class__(**{**record.__dict__, "certificate_pem": "not a key"})
    with pytest.raises(CaNotReadyError, match="damaged"):
        published_jwt_authorities([damaged], clock.now())


def test_a_key_missing_from_the_key_store_means_not_ready(
    repository: Repository, clock: ManualClock
) -> None:
    JwtKeySet(store=repository, key_manager=MemoryKeyManager(), clock=clock).maintain()
    amnesiac = JwtKeySet(store=repository, key_manager=MemoryKeyManager(), clock=clock)
    with pytest.raises(CaNotReadyError, match="missing"):
        amnesiac.mint(WEB, ["a"])
