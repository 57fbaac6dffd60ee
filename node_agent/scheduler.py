"""A keyed task scheduler driven by an injected clock.

Each task has a key; scheduling a key again replaces its pending task, and the replaced
(stale) task is dropped when its time comes. ``run_due()`` runs whatever is due by the
clock, which is how tests drive it with a ManualClock; ``start()`` runs the same loop on a
daemon thread that sleeps until the next task (or ``poll_interval``, so that a clock
moved by hand is noticed).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from citadel.identity.clock import Clock, utc

__all__ = ["Scheduler"]

_log = logging.getLogger(__name__)


@dataclass(order=True, slots=True)
class _Entry:
    at: datetime
    seq: int
    key: str = field(compare=False)
    action: Callable[[], object] = field(compare=False)


class Scheduler:
    def __init__(self, clock: Clock, *, poll_interval: timedelta = timedelta(seconds=1)) -> None:
        self._clock = clock
        self._poll = poll_interval.total_seconds()
        self._heap: list[_Entry] = []
        self._current: dict[str, int] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # --- scheduling --------------------------------------------------------------------
    def schedule(self, key: str, at: datetime, action: Callable[[], object]) -> None:
        """Run ``action`` at ``at`` (clock time), replacing any pending task with ``key``."""
        entry = _Entry(utc(at), next(self._seq), key, action)
        with self._lock:
            self._current[key] = entry.seq
            heapq.heappush(self._heap, entry)
        self._wake.set()

    def cancel(self, key: str) -> None:
        with self._lock:
            self._current.pop(key, None)

    def due_at(self, key: str) -> datetime | None:
        """When the pending task for ``key`` runs, or None."""
        with self._lock:
            seq = self._current.get(key)
            for entry in self._heap:
                if entry.seq == seq:
                    return entry.at
        return None

    def next_due(self) -> datetime | None:
        with self._lock:
            self._drop_stale_head()
            return self._heap[0].at if self._heap else None

    def _drop_stale_head(self) -> None:
        while self._heap and self._current.get(self._heap[0].key) != self._heap[0].seq:
            heapq.heappop(self._heap)

    def run_due(self) -> int:
        """Run every task due by the clock, in time order; returns how many ran."""
        ran = 0
        while True:
            with self._lock:
                self._drop_stale_head()
                if not self._heap or self._heap[0].at > self._clock.now():
                    return ran
                entry = heapq.heappop(self._heap)
                del self._current[entry.key]
            try:
                entry.action()
            except Exception:  # a failing task must not kill the scheduler
                _log.exception("scheduled task %s failed", entry.key)
            ran += 1

    # --- thread ------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("scheduler already started")
        self._thread = threading.Thread(target=self._loop, name="agent-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self.run_due()
            due = self.next_due()
            wait = self._poll
            if due is not None:
                wait = max(0.0, min(wait, (due - self._clock.now()).total_seconds()))
            self._wake.wait(wait)
            self._wake.clear()
