"""Reload a :class:`PolicyStore` when its directory changes (watchdog, debounced).

Editors and Kubernetes ConfigMap updates produce bursts of events (temp files, renames,
symlink swaps); one reload runs ``debounce`` after the last event of a burst.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from types import TracebackType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from citadel.authz.policy_store import PolicyStore

__all__ = ["PolicyWatcher"]

_log = logging.getLogger(__name__)


class _Handler(FileSystemEventHandler):
    def __init__(self, schedule: Callable[[], None]) -> None:
        self._schedule = schedule

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        self._schedule()


class PolicyWatcher:
    """Watches ``store.directory`` and calls ``store.reload()`` after changes.

    Use as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self, store: PolicyStore, *, debounce: timedelta = timedelta(milliseconds=200)
    ) -> None:
        self._store = store
        self._debounce = debounce.total_seconds()
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._observer: BaseObserver | None = None
        self._stopped = False

    def _schedule(self) -> None:
        with self._lock:
            if self._stopped:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._debounce, self._reload)
            self._timer.daemon = True
            self._timer.start()

    def _reload(self) -> None:
        try:
            self._store.reload()
        except Exception:  # the watcher must survive anything a reload throws
            _log.exception("authz policy reload crashed; keeping the previous policy")

    def start(self) -> None:
        observer = Observer()
        observer.schedule(_Handler(self._schedule), str(self._store.directory))
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._timer is not None:
                self._timer.cancel()
        observer = self._observer
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)
            self._observer = None

    def __enter__(self) -> PolicyWatcher:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
