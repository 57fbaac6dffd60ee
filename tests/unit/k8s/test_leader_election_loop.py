"""Leadership changes driven by election rounds, with a manual clock."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from citadel.identity.clock import ManualClock
from citadel.k8s.errors import KubeApiUnavailableError
from citadel.k8s.leader_election_loop import LeaderElectionLoop
from citadel.k8s.leader_elector import LeaderElector, LeadershipObservation

SECOND = timedelta(seconds=1)


class ScriptedElector:
    """Answers each round from a script: True/False or an exception to raise."""

    def __init__(self, script: list[bool | Exception], clock: ManualClock) -> None:
        self._script: Iterator[bool | Exception] = iter(script)
        self._clock = clock
        self.released = 0
        self.events: list[str] = []

    @property
    def identity(self) -> str:
        return "replica-a"

    @property
    def lease_duration(self) -> timedelta:
        return 15 * SECOND

    def try_acquire_or_renew(self) -> LeadershipObservation:
        answer = next(self._script)
        if isinstance(answer, Exception):
            raise answer
        if answer:
            return LeadershipObservation(True, "replica-a", self._clock.now() + 15 * SECOND)
        return LeadershipObservation(False, "replica-b")

    def release(self) -> None:
        self.events.append("release")
        self.released += 1


def make_loop(
    script: list[bool | Exception], clock: ManualClock
) -> tuple[LeaderElectionLoop, ScriptedElector, list[bool]]:
    elector = ScriptedElector(script, clock)
    changes: list[bool] = []

    def listener(leading: bool) -> None:
        changes.append(leading)
        elector.events.append(f"leading={leading}")

    _: LeaderElector = elector
    loop = LeaderElectionLoop(
        elector,
        clock=clock,
        renew_deadline=10 * SECOND,
        retry_period=2 * SECOND,
        listeners=[listener],
    )
    return loop, elector, changes


def down() -> KubeApiUnavailableError:
    return KubeApiUnavailableError("cannot update Lease: HTTP 500")


def test_winning_a_round_makes_this_replica_leader_once(clock: ManualClock) -> None:
    loop, _, changes = make_loop([True, True, True], clock)
    for _ in range(3):
        assert loop.tick() is True
        clock.advance(2 * SECOND)
    assert changes == [True]


def test_follower_stays_follower_while_another_holds_the_lease(clock: ManualClock) -> None:
    loop, _, changes = make_loop([False, False], clock)
    assert loop.tick() is False
    assert loop.tick() is False
    assert changes == []


def test_leader_that_loses_the_lease_steps_down(clock: ManualClock) -> None:
    loop, _, changes = make_loop([True, False], clock)
    loop.tick()
    clock.advance(2 * SECOND)
    assert loop.tick() is False
    assert changes == [True, False]


def test_leader_keeps_leading_through_failures_shorter_than_the_renew_deadline(
    clock: ManualClock,
) -> None:
    loop, _, changes = make_loop([True, down(), down(), down(), True], clock)
    loop.tick()
    for _ in range(3):
        clock.advance(3 * SECOND)  # 9 s after the last renewal: still inside the 10 s deadline
        assert loop.tick() is True
    clock.advance(SECOND / 2)
    assert loop.tick() is True
    assert changes == [True]
    assert loop.failures == 3


def test_leader_steps_down_when_it_cannot_renew_before_the_deadline(clock: ManualClock) -> None:
    loop, _, changes = make_loop([True, down(), down()], clock)
    loop.tick()
    clock.advance(5 * SECOND)
    assert loop.tick() is True
    clock.advance(5 * SECOND)  # 10 s since the last successful renewal
    assert loop.tick() is False
    assert changes == [True, False]


def test_failures_of_a_follower_change_nothing(clock: ManualClock) -> None:
    loop, _, changes = make_loop([down(), RuntimeError("boom"), True], clock)
    assert loop.tick() is False
    assert loop.tick() is False
    assert loop.tick() is True
    assert changes == [True]


def test_step_down_stops_jobs_before_releasing_the_lease(clock: ManualClock) -> None:
    loop, elector, _ = make_loop([True], clock)
    loop.tick()
    loop.step_down()
    assert elector.events == ["leading=True", "leading=False", "release"]
    assert loop.is_leader is False


def test_a_failing_listener_does_not_break_the_loop(clock: ManualClock) -> None:
    elector = ScriptedElector([True, True], clock)
    seen: list[bool] = []

    def broken(leading: bool) -> None:
        raise RuntimeError("listener bug")

    loop = LeaderElectionLoop(
        elector,
        clock=clock,
        renew_deadline=10 * SECOND,
        retry_period=2 * SECOND,
        listeners=[broken, seen.append],
    )
    assert loop.tick() is True
    assert seen == [True]


@pytest.mark.parametrize(
    ("renew_deadline", "retry_period"),
    [(15 * SECOND, 2 * SECOND), (10 * SECOND, 10 * SECOND), (10 * SECOND, 0 * SECOND)],
    ids=["deadline-not-below-lease", "retry-not-below-deadline", "zero-retry"],
)
def test_unsafe_timings_are_rejected(
    clock: ManualClock, renew_deadline: timedelta, retry_period: timedelta
) -> None:
    with pytest.raises(ValueError):
        LeaderElectionLoop(
            ScriptedElector([], clock),
            clock=clock,
            renew_deadline=renew_deadline,
            retry_period=retry_period,
        )


def test_thread_runs_rounds_and_releases_on_stop(clock: ManualClock) -> None:
    elector = ScriptedElector([True] * 1000, clock)
    seen: list[bool] = []
    loop = LeaderElectionLoop(
        elector,
        clock=clock,
        renew_deadline=10 * SECOND,
        retry_period=timedelta(milliseconds=20),
        listeners=[seen.append],
    )
    loop.start()
    try:
        deadline = time.monotonic() + 5
        while not loop.is_leader and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loop.is_leader
    finally:
        loop.stop(timeout=5 * SECOND)
    assert seen == [True, False]
    assert elector.released == 1
