"""Debounced directory watching (watchdog), for secrets mounted as files.

Kubernetes updates mounted secrets by swapping a ``..data`` symlink, and editors and
``cp`` produce bursts of events, so whole directories are watched and a change fires the
callbacks once, ``debounce`` after the last event. The debounce runs on the agent's
scheduler (and its injected clock).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from citadel.identity.clock import Clock
from node_agent.scheduler import Scheduler

__all__ = ["DirectoryWatcher"]

_log = logging.getLogger(__name__)

# Reading a file produces "opened" / "closed_no_write" events; those must not trigger a
# reload, or every reload would schedule the next one.
_CHANGES = frozenset({"created", "modified", "moved", "deleted", "closed"})


class _Handler(FileSystemEventHandler):
    def __init__(self, directory: str, fire: Callable[[str], None]) -> None:
        self._directory = directory
        self._fire = fire

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _CHANGES and not event.is_directory:
            self._fire(self._directory)
        elif event.event_type in ("created", "moved", "deleted") and event.is_directory:
            self._fire(self._directory)  # e.g. the ..data swap of a Kubernetes volume


class DirectoryWatcher:
    def __init__(
        self,
        scheduler: Scheduler,
        clock: Clock,
        *,
        debounce: timedelta = timedelta(milliseconds=200),
        observer: BaseObserver | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._clock = clock
        self._debounce = debounce
        self._observer = observer if observer is not None else Observer()
        self._callbacks: dict[str, list[Callable[[], object]]] = {}
        self._lock = threading.Lock()
        self._started = False

    def start(self) -> None:
        if not self._started:
            self._observer.daemon = True
            self._observer.start()
            self._started = True

    def stop(self) -> None:
        if self._started:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._started = False

    def watch(self, directory: Path, callback: Callable[[], object]) -> None:
        """Call ``callback`` (debounced) whenever something in ``directory`` changes."""
        key = os.path.normpath(str(directory))
        with self._lock:
            first = key not in self._callbacks
            self._callbacks.setdefault(key, []).append(callback)
        if first:
            try:
                self._observer.schedule(_Handler(key, self.notify), key, recursive=False)
            except OSError as exc:
                _log.warning("cannot watch %s for changes: %s", key, exc)

    def notify(self, directory: str) -> None:
        """Record a change in ``directory``; callbacks run ``debounce`` after the last one."""
        self._scheduler.schedule(
            f"file-change:{directory}",
            self._clock.now() + self._debounce,
            lambda: self._run(directory),
        )

    def _run(self, directory: str) -> None:
        with self._lock:
            callbacks = list(self._callbacks.get(directory, ()))
        for callback in callbacks:
            try:
                callback()
            except Exception:
                _log.exception("reload after a change in %s failed", directory)
