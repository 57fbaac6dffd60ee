"""A resilient list-then-watch loop over one kind of Kubernetes object.

It lists, hands the snapshot over, then watches from the list's resourceVersion with the
client's :class:`kubernetes.watch.Watch`, and recovers from everything a long-lived watch meets:

- the server ends the watch (``timeout_seconds``): resume from the last resourceVersion;
- 410 Gone, as an HTTP status or as an ERROR event: the history is gone, list again;
- a dropped connection, a 5xx or a 429: wait (capped exponential backoff with jitter), resume;
- any other failure (403, garbage, a failing callback): log, back off, resume; after
  :data:`RELIST_AFTER_FAILURES` failures in a row, list again. The loop never ends on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kubernetes import watch as k8s_watch

from citadel.k8s.api_errors import describe_failure, is_gone
from citadel.k8s.backoff import Backoff, BackoffPolicy

__all__ = ["ListWatchStats", "ListWatcher", "WatchEvent"]

_log = logging.getLogger(__name__)

# A watch that ends this fast without delivering anything counts as a failure (no hot loop).
_MIN_HEALTHY_WATCH_SECONDS = 1.0
# After this many failures in a row, stop resuming and list again (a fresh start).
RELIST_AFTER_FAILURES = 5


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED | MODIFIED | DELETED
    object: Any  # the deserialized model (V1Namespace, V1ConfigMap, ...)


@dataclass
class ListWatchStats:
    """Counters for tests and metrics; updated by the watcher thread only."""

    lists: int = 0
    watches: int = 0
    events: int = 0
    gone: int = 0
    failures: int = 0
    last_failure: str = ""
    failure_kinds: dict[str, int] = field(default_factory=dict)


class ListWatcher:
    """Runs list+watch for one resource until :meth:`stop`.

    Args:
        name: for logs ("namespaces").
        list_fn: the bound client method (``CoreV1Api.list_namespace``).
        on_snapshot: called with every object after each (re)list.
        on_event: called for each ADDED/MODIFIED/DELETED event.
        list_kwargs: selectors and the like, passed to both list and watch.
        watch_timeout: asked of the server per watch request (``timeout_seconds``).
        backoff: the retry policy for failures.
        request_timeout: the client-side timeout of a list call; a watch may stay silent for
            watch_timeout plus this before the client gives up on it.
    """

    def __init__(
        self,
        *,
        name: str,
        list_fn: Callable[..., Any],
        on_snapshot: Callable[[list[Any]], None],
        on_event: Callable[[WatchEvent], None],
        list_kwargs: Mapping[str, Any] | None = None,
        watch_timeout: timedelta = timedelta(seconds=60),
        backoff: BackoffPolicy | None = None,
        request_timeout: timedelta = timedelta(seconds=30),
        unit_random: Callable[[], float] | None = None,
    ) -> None:
        if watch_timeout < timedelta(seconds=1):
            raise ValueError("watch_timeout must be at least one second")
        self._name = name
        self._list_fn = list_fn
        self._on_snapshot = on_snapshot
        self._on_event = on_event
        self._kwargs = dict(list_kwargs or {})
        self._watch_timeout = int(watch_timeout.total_seconds())
        self._request_timeout = request_timeout.total_seconds()
        policy = backoff or BackoffPolicy()
        self._backoff = (
            Backoff(policy) if unit_random is None else Backoff(policy, unit_random=unit_random)
        )
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._watch: k8s_watch.Watch | None = None
        self._resource_version: str | None = None
        self._gone_in_row = 0
        self.stats = ListWatchStats()

    # --- lifecycle ------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to end; also unblocks a watch that is streaming.

        A watch still waiting for the server's response headers cannot be interrupted; it
        ends at the latest when the server ends it (``watch_timeout``), and the loop then exits.
        """
        self._stop.set()
        with self._lock:
            if self._watch is not None:
                self._watch.stop()  # type: ignore[no-untyped-call]

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """The loop; returns only after :meth:`stop`."""
        while not self._stop.is_set():
            try:
                if self._resource_version is None:
                    self._relist()
                self._watch_once()
            except Exception as exc:  # the loop must survive anything the API server does
                if self._stop.is_set():
                    break
                self._record_failure(exc)
        _log.debug("%s watcher stopped", self._name)

    # --- steps ----------------------------------------------------------------------------
    def _relist(self) -> None:
        result = self._list_fn(**self._kwargs, _request_timeout=self._request_timeout)
        self.stats.lists += 1
        metadata = getattr(result, "metadata", None)
        resource_version = getattr(metadata, "resource_version", None)
        self._on_snapshot(list(getattr(result, "items", None) or []))
        # Only resume from a version once the snapshot is delivered.
        self._resource_version = resource_version or None
        if self._resource_version is None:
            raise ValueError(f"{self._name} list returned no resourceVersion")

    def _watch_once(self) -> None:
        watcher = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        with self._lock:
            if self._stop.is_set():
                return
            self._watch = watcher
        started = time.monotonic()
        delivered = 0
        self.stats.watches += 1
        try:
            stream = watcher.stream(  # type: ignore[no-untyped-call]
                self._list_fn,
                **self._kwargs,
                resource_version=self._resource_version,
                timeout_seconds=self._watch_timeout,
                allow_watch_bookmarks=True,
                # The server ends the watch after watch_timeout; allow request_timeout more.
                _request_timeout=(
                    self._request_timeout,
                    self._watch_timeout + self._request_timeout,
                ),
            )
            for raw in stream:
                if self._stop.is_set():
                    return
                delivered += self._handle(raw, watcher)
        finally:
            with self._lock:
                self._watch = None
        if self._stop.is_set():
            return
        if delivered == 0 and time.monotonic() - started < _MIN_HEALTHY_WATCH_SECONDS:
            # The server closed an idle watch at once: treat it like a failure (backoff).
            raise ConnectionError(f"{self._name} watch ended immediately")
        self._healthy()

    def _handle(self, raw: Mapping[str, Any], watcher: k8s_watch.Watch) -> int:
        event_type = str(raw.get("type", ""))
        if event_type == "BOOKMARK":
            if watcher.resource_version:
                self._resource_version = str(watcher.resource_version)
            return 0
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            return 0
        self._on_event(WatchEvent(event_type, raw["object"]))
        self.stats.events += 1
        version = getattr(getattr(raw["object"], "metadata", None), "resource_version", None)
        if version:
            self._resource_version = str(version)
        # Events flowing means the connection is healthy again.
        self._healthy()
        return 1

    def _healthy(self) -> None:
        self._backoff.reset()
        self._gone_in_row = 0

    def _record_failure(self, exc: Exception) -> None:
        label = describe_failure(exc)
        self.stats.failures += 1
        self.stats.last_failure = label
        kind = type(exc).__name__
        self.stats.failure_kinds[kind] = self.stats.failure_kinds.get(kind, 0) + 1
        if is_gone(exc):
            self.stats.gone += 1
            self._resource_version = None
            self._gone_in_row += 1
            _log.info("%s watch expired (410 Gone); listing again", self._name)
            if self._gone_in_row == 1:
                return  # relist at once: an expired version is routine
        delay = self._backoff.next_delay()
        if self._backoff.attempt >= RELIST_AFTER_FAILURES:
            self._resource_version = None
        _log.warning(
            "%s list/watch failed (%s); retrying in %.2fs (attempt %d)",
            self._name,
            label,
            delay.total_seconds(),
            self._backoff.attempt,
        )
        self._stop.wait(delay.total_seconds())
