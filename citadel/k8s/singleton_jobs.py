"""Run the cluster-wide singleton jobs (rotation schedule, CRL publishing, root ConfigMaps)
on the elected leader only.

:class:`SingletonJobRunner` is a leadership listener: it starts every job when this replica
becomes leader and stops them (in reverse order) when it stops being leader. A job that fails
to start or stop is logged and does not affect the others.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Protocol

__all__ = ["PeriodicJob", "SingletonJob", "SingletonJobRunner"]

_log = logging.getLogger(__name__)


class SingletonJob(Protocol):
    """A job that must run on one replica at a time; start/stop must not block for long."""

    @property
    def name(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class SingletonJobRunner:
    def __init__(self, jobs: Sequence[SingletonJob]) -> None:
        names = [job.name for job in jobs]
        if len(set(names)) != len(names):
            raise ValueError("singleton job names must be unique")
        self._jobs = list(jobs)
        self._running: list[SingletonJob] = []
        self._lock = threading.Lock()
        self.start_failures = 0

    @property
    def running(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(job.name for job in self._running)

    def __call__(self, leading: bool) -> None:
        self.on_leadership_change(leading)

    def on_leadership_change(self, leading: bool) -> None:
        if leading:
            self.start_all()
        else:
            self.stop_all()

    def start_all(self) -> None:
        with self._lock:
            for job in self._jobs:
                if any(job is running for running in self._running):
                    continue
                try:
                    job.start()
                except Exception:
                    self.start_failures += 1
                    _log.exception("singleton job %s failed to start", job.name)
                    continue
                self._running.append(job)
                _log.info("singleton job %s started", job.name)

    def stop_all(self) -> None:
        with self._lock:
            while self._running:
                job = self._running.pop()
                try:
                    job.stop()
                except Exception:
                    _log.exception("singleton job %s failed to stop cleanly", job.name)
                else:
                    _log.info("singleton job %s stopped", job.name)


class PeriodicJob:
    """Calls ``action`` every ``interval`` in its own thread while started.

    An exception from ``action`` is logged and counted; the next run happens as scheduled.
    """

    def __init__(
        self,
        name: str,
        action: Callable[[], None],
        *,
        interval: timedelta,
        run_at_start: bool = True,
        stop_timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("interval must be positive")
        self._name = name
        self._action = action
        self._interval = interval
        self._run_at_start = run_at_start
        self._stop_timeout = stop_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0

    @property
    def name(self) -> str:
        return self._name

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"citadel-{self._name}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self._stop_timeout.total_seconds())

    def _loop(self) -> None:
        stop = self._stop
        if not self._run_at_start and stop.wait(self._interval.total_seconds()):
            return
        while not stop.is_set():
            try:
                self._action()
            except Exception:
                self.failures += 1
                _log.exception("periodic job %s failed", self._name)
            self.runs += 1
            if stop.wait(self._interval.total_seconds()):
                return
