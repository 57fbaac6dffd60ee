"""A daemon thread that runs a few maintenance callables at a fixed interval."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta

__all__ = ["PeriodicTasks"]

_log = logging.getLogger(__name__)


class PeriodicTasks:
    """Runs each task every ``interval``; a failing task is logged and retried next time."""

    def __init__(
        self, tasks: Sequence[Callable[[], object]], *, interval: timedelta, name: str
    ) -> None:
        if interval <= timedelta(0):
            raise ValueError("interval must be positive")
        self._tasks = tuple(tasks)
        self._seconds = interval.total_seconds()
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> None:
        for task in self._tasks:
            try:
                task()
            except Exception:
                _log.exception(
                    "%s: a maintenance task failed; retrying in %.0fs", self._name, self._seconds
                )

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self._seconds):
                self.run_once()

        self._thread = threading.Thread(target=loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
