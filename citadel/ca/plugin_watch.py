"""Watching a plug-in CA directory and applying a change once the directory is quiet.

Secrets are rarely written in one step (Kubernetes swaps a ``..data`` symlink, an operator
copies four files), so every filesystem event (watchdog) restarts a quiet timer, and the
directory is read only after ``quiet`` (2 s) without events. :class:`PluginCa` then loads,
checks and installs it (:mod:`citadel.ca.plugin_dir`, :mod:`citadel.ca.plugin_install`) and
asks for the issuer to be reloaded. A refused directory is logged with its reason and the
running CA keeps its current keys; the next change is tried again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from citadel.ca.crl import CrlPublisher
from citadel.ca.keymanager.base import KeyManager
from citadel.ca.plugin_dir import load_plugin_dir
from citadel.ca.plugin_install import PluginInstall, install_plugin_ca
from citadel.errors import CitadelError
from citadel.identity.clock import Clock
from citadel.identity.spiffe_id import TrustDomain
from citadel.store.repository import Repository

__all__ = ["DEFAULT_QUIET", "Debouncer", "PluginCa", "PluginDirWatcher"]

_log = logging.getLogger(__name__)
DEFAULT_QUIET = timedelta(seconds=2)


class Debouncer:
    """Calls ``action`` once, ``quiet`` after the last :meth:`trigger`."""

    def __init__(self, action: Callable[[], object], quiet: timedelta) -> None:
        if quiet <= timedelta(0):
            raise ValueError("quiet must be positive")
        self._action = action
        self._quiet = quiet.total_seconds()
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._closed = False

    def trigger(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self._quiet, self._fire)
            self._timer.daemon = True
            self._timer.start()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            if self._closed:
                return
        try:
            self._action()
        except Exception:
            _log.exception("debounced action failed")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class _AnyEvent(FileSystemEventHandler):
    def __init__(self, on_event: Callable[[], None]) -> None:
        self._on_event = on_event

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return  # reads (including our own) change nothing
        self._on_event()


class PluginDirWatcher:
    """watchdog on one directory (not recursive), debounced."""

    def __init__(
        self, directory: Path, on_settled: Callable[[], object], *, quiet: timedelta = DEFAULT_QUIET
    ) -> None:
        self._directory = Path(directory)
        self._debouncer = Debouncer(on_settled, quiet)
        self._observer: Observer | None = None  # type: ignore[valid-type]

    def start(self) -> None:
        if self._observer is not None:
            return
        observer = Observer()
        observer.schedule(_AnyEvent(self._debouncer.trigger), str(self._directory), recursive=False)
        observer.daemon = True
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        self._debouncer.close()
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)


class PluginCa:
    """Everything ``citadel serve --plugin-ca-dir DIR`` needs, given the CA's parts."""

    def __init__(
        self,
        directory: Path,
        *,
        repository: Repository,
        key_manager: KeyManager,
        clock: Clock,
        trust_domain: TrustDomain,
        reload: Callable[[], object],
        crl_publisher: CrlPublisher | None = None,
        quiet: timedelta = DEFAULT_QUIET,
    ) -> None:
        self.directory = Path(directory)
        self._repository = repository
        self._key_manager = key_manager
        self._clock = clock
        self._trust_domain = trust_domain
        self._reload = reload
        self._crls = crl_publisher
        self._watcher = PluginDirWatcher(self.directory, self._apply_logged, quiet=quiet)
        self._lock = threading.Lock()
        self.last_error: str | None = None
        self.last_result: PluginInstall | None = None
        self.applied = threading.Event()  # set after each attempt (tests, readiness)

    def apply(self) -> PluginInstall:
        """Load, check and install the directory now, then reload the issuer.

        Raises:
            PluginCaError: the directory is refused; nothing was changed.
            RotationBusyError: a rotation step runs elsewhere (try again).
        """
        with self._lock:
            material = load_plugin_dir(
                self.directory, trust_domain=self._trust_domain, now=self._clock.now()
            )
            result = install_plugin_ca(
                material,
                repository=self._repository,
                key_manager=self._key_manager,
                clock=self._clock,
            )
            if self._crls is not None:
                self._crls.set_external_crls(material.crls)
            if result.changed:
                self._reload()
            self.last_result = result
            self.last_error = None
            return result

    def _apply_logged(self) -> None:
        try:
            result = self.apply()
        except CitadelError as exc:
            self.last_error = exc.message
            _log.error(
                "plug-in CA directory %s refused; keeping the current CA keys: %s",
                self.directory,
                exc.message,
            )
        else:
            _log.info("plug-in CA directory %s: %s", self.directory, result.message)
        finally:
            self.applied.set()

    def start(self) -> None:
        self._watcher.start()

    def stop(self) -> None:
        self._watcher.stop()
