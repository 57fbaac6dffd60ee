"""Leader election on a database lock row (replicas outside Kubernetes).

Runs against the real repository on SQLite; the PostgreSQL variant is part of the
multi-replica integration tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.identity.clock import ManualClock
from citadel.k8s.db_lock_elector import DatabaseLockElector, LockRepository
from citadel.k8s.leader_elector import LeaderElector

SECOND = timedelta(seconds=1)


@pytest.fixture
def repository(tmp_path: Path) -> Iterator[LockRepository]:
    from citadel.store.repository import Repository

    repo = Repository.open(f"sqlite:///{tmp_path / 'citadel.db'}")
    try:
        yield repo
    finally:
        repo.close()


def elector(repository: LockRepository, identity: str, clock: ManualClock) -> DatabaseLockElector:
    built = DatabaseLockElector(
        repository,
        name="citadel-leader",
        identity=identity,
        clock=clock,
        lease_duration=15 * SECOND,
    )
    _: LeaderElector = built
    return built


def test_first_replica_takes_the_lock_and_the_second_waits(
    repository: LockRepository, clock: ManualClock
) -> None:
    a, b = elector(repository, "a", clock), elector(repository, "b", clock)
    first = a.try_acquire_or_renew()
    assert first.is_leader and first.expires_at == clock.now() + 15 * SECOND
    assert b.try_acquire_or_renew().is_leader is False


def test_holder_renews_and_keeps_the_lock_past_the_first_expiry(
    repository: LockRepository, clock: ManualClock
) -> None:
    a, b = elector(repository, "a", clock), elector(repository, "b", clock)
    a.try_acquire_or_renew()
    clock.advance(10 * SECOND)
    assert a.try_acquire_or_renew().is_leader
    clock.advance(10 * SECOND)  # 20 s after the first claim, 10 s after the renewal
    assert b.try_acquire_or_renew().is_leader is False


def test_an_expired_lock_is_taken_over(repository: LockRepository, clock: ManualClock) -> None:
    a, b = elector(repository, "a", clock), elector(repository, "b", clock)
    a.try_acquire_or_renew()
    clock.advance(15 * SECOND)
    assert b.try_acquire_or_renew().is_leader
    assert a.try_acquire_or_renew().is_leader is False


def test_release_lets_the_next_replica_in_at_once(
    repository: LockRepository, clock: ManualClock
) -> None:
    a, b = elector(repository, "a", clock), elector(repository, "b", clock)
    a.try_acquire_or_renew()
    a.release()
    assert b.try_acquire_or_renew().is_leader


def test_release_by_a_non_holder_changes_nothing(
    repository: LockRepository, clock: ManualClock
) -> None:
    a, b = elector(repository, "a", clock), elector(repository, "b", clock)
    a.try_acquire_or_renew()
    b.release()
    assert b.try_acquire_or_renew().is_leader is False


@pytest.mark.parametrize(
    ("name", "identity", "duration"),
    [("", "a", 15 * SECOND), ("lock", "", 15 * SECOND), ("lock", "a", SECOND / 2)],
    ids=["empty-name", "empty-identity", "sub-second-lease"],
)
def test_bad_settings_are_rejected(
    clock: ManualClock, name: str, identity: str, duration: timedelta
) -> None:
    class Unused:
        def try_acquire_lock(self, *args: object) -> bool:
            raise AssertionError

        def release_lock(self, *args: object) -> bool:
            raise AssertionError

    with pytest.raises(ValueError):
        DatabaseLockElector(
            Unused(), name=name, identity=identity, clock=clock, lease_duration=duration
        )
