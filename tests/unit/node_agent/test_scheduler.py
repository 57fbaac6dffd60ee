from __future__ import annotations

import threading
from datetime import timedelta

from citadel.identity.clock import ManualClock
from node_agent.scheduler import Scheduler


def test_task_runs_only_once_the_clock_reaches_its_time(clock: ManualClock) -> None:
    scheduler = Scheduler(clock)
    ran: list[str] = []
    scheduler.schedule("a", clock.now() + timedelta(seconds=10), lambda: ran.append("a"))
    assert scheduler.run_due() == 0
    clock.advance(timedelta(seconds=9))
    assert scheduler.run_due() == 0
    clock.advance(timedelta(seconds=1))
    assert scheduler.run_due() == 1
    assert ran == ["a"]


def test_rescheduling_a_key_drops_the_stale_task(clock: ManualClock) -> None:
    scheduler = Scheduler(clock)
    ran: list[str] = []
    scheduler.schedule("renew", clock.now() + timedelta(seconds=1), lambda: ran.append("old"))
    scheduler.schedule("renew", clock.now() + timedelta(seconds=5), lambda: ran.append("new"))
    clock.advance(timedelta(seconds=10))
    scheduler.run_due()
    assert ran == ["new"]


def test_due_tasks_run_in_time_order(clock: ManualClock) -> None:
    scheduler = Scheduler(clock)
    ran: list[str] = []
    scheduler.schedule("late", clock.now() + timedelta(seconds=3), lambda: ran.append("late"))
    scheduler.schedule("early", clock.now() + timedelta(seconds=1), lambda: ran.append("early"))
    clock.advance(timedelta(seconds=5))
    scheduler.run_due()
    assert ran == ["early", "late"]


def test_a_failing_task_does_not_stop_the_others(clock: ManualClock) -> None:
    scheduler = Scheduler(clock)
    ran: list[str] = []

    def boom() -> None:
        raise RuntimeError("boom")

    scheduler.schedule("bad", clock.now(), boom)
    scheduler.schedule("good", clock.now(), lambda: ran.append("good"))
    assert scheduler.run_due() == 2
    assert ran == ["good"]


def test_cancelled_task_never_runs(clock: ManualClock) -> None:
    scheduler = Scheduler(clock)
    ran: list[str] = []
    scheduler.schedule("x", clock.now(), lambda: ran.append("x"))
    scheduler.cancel("x")
    assert scheduler.run_due() == 0
    assert scheduler.next_due() is None


def test_thread_notices_a_manually_advanced_clock(clock: ManualClock) -> None:
    scheduler = Scheduler(clock, poll_interval=timedelta(milliseconds=20))
    fired = threading.Event()
    scheduler.schedule("x", clock.now() + timedelta(hours=1), fired.set)
    scheduler.start()
    try:
        assert not fired.wait(0.1)
        clock.advance(timedelta(hours=1))
        assert fired.wait(2)
    finally:
        scheduler.stop()
