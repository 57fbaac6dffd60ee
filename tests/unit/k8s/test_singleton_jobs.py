"""Singleton jobs run only while this replica leads."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest

from citadel.k8s.singleton_jobs import PeriodicJob, SingletonJob, SingletonJobRunner


class RecordingJob:
    def __init__(self, name: str, log: list[str], *, fail_start: bool = False) -> None:
        self._name = name
        self._log = log
        self._fail_start = fail_start

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        if self._fail_start:
            raise RuntimeError("cannot start")
        self._log.append(f"start {self._name}")

    def stop(self) -> None:
        self._log.append(f"stop {self._name}")


def test_jobs_start_on_leadership_and_stop_in_reverse_order_when_it_ends() -> None:
    log: list[str] = []
    jobs: list[SingletonJob] = [RecordingJob("rotation", log), RecordingJob("crl", log)]
    runner = SingletonJobRunner(jobs)
    runner.on_leadership_change(True)
    assert runner.running == ("rotation", "crl")
    runner.on_leadership_change(False)
    assert log == ["start rotation", "start crl", "stop crl", "stop rotation"]
    assert len(runner.running) == 0


def test_repeated_leadership_notice_does_not_start_jobs_twice() -> None:
    log: list[str] = []
    runner = SingletonJobRunner([RecordingJob("rotation", log)])
    runner(True)
    runner(True)
    runner(False)
    runner(False)
    assert log == ["start rotation", "stop rotation"]


def test_a_job_that_fails_to_start_does_not_block_the_others() -> None:
    log: list[str] = []
    runner = SingletonJobRunner(
        [RecordingJob("broken", log, fail_start=True), RecordingJob("crl", log)]
    )
    runner(True)
    assert runner.running == ("crl",)
    assert runner.start_failures == 1


def test_duplicate_job_names_are_rejected() -> None:
    with pytest.raises(ValueError):
        SingletonJobRunner([RecordingJob("a", []), RecordingJob("a", [])])


def test_periodic_job_runs_repeatedly_survives_errors_and_stops() -> None:
    calls = 0
    three_runs = threading.Event()

    def action() -> None:
        nonlocal calls
        calls += 1
        if calls >= 3:
            three_runs.set()
        if calls == 1:
            raise RuntimeError("first run fails")

    job = PeriodicJob("crl-publisher", action, interval=timedelta(milliseconds=10))
    job.start()
    try:
        assert three_runs.wait(5)
    finally:
        job.stop()
    after_stop = calls
    assert job.failures == 1
    time.sleep(0.05)  # the interval is 10 ms: a running job would have run again
    assert calls == after_stop


def test_periodic_job_rejects_a_zero_interval() -> None:
    with pytest.raises(ValueError):
        PeriodicJob("x", lambda: None, interval=timedelta(0))
