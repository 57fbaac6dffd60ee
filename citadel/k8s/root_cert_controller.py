"""Publish the trust bundle into a ConfigMap in every namespace and keep it there.

Three threads: a list+watch of namespaces, a list+watch of our (label-selected) ConfigMaps, and
a worker. The watches keep an in-memory picture of the cluster and mark namespaces dirty; the
worker asks the pure planner (:mod:`citadel.k8s.root_cert_reconcile`) what each dirty namespace
needs and applies it through :class:`~citadel.k8s.root_cert_writer.RootCertWriter`.

Triggers: a namespace is created or relabelled; one of our ConfigMaps is edited or deleted; the
bundle source returns a different PEM (polled, or pushed with :meth:`bundle_changed`); a full
resync timer. A failed write is retried for that namespace alone with capped exponential
backoff and jitter; the controller itself never stops because of the API server.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kubernetes import client as k8s

from citadel.k8s.api_errors import describe_failure
from citadel.k8s.backoff import Backoff, BackoffPolicy
from citadel.k8s.list_watch import ListWatcher, ListWatchStats, WatchEvent
from citadel.k8s.root_cert_reconcile import (
    DEFAULT_CONFIG_MAP_NAME,
    DEFAULT_DATA_KEY,
    DEFAULT_EXCLUDE_LABEL,
    DEFAULT_MANAGED_LABEL,
    ConfigMapState,
    DesiredRootCert,
    NamespaceState,
    plan_namespace,
)
from citadel.k8s.root_cert_writer import RootCertWriteOutcome, RootCertWriter, config_map_state

__all__ = [
    "BundleSource",
    "RootCertController",
    "RootCertControllerConfig",
    "RootCertControllerStats",
    "namespace_state",
]

_log = logging.getLogger(__name__)

# Returns the current trust bundle as PEM, or None while the CA has none yet.
BundleSource = Callable[[], str | None]


@dataclass(frozen=True, kw_only=True)
class RootCertControllerConfig:
    config_map_name: str = DEFAULT_CONFIG_MAP_NAME
    data_key: str = DEFAULT_DATA_KEY
    managed_label: tuple[str, str] = DEFAULT_MANAGED_LABEL
    exclude_label: str = DEFAULT_EXCLUDE_LABEL
    resync_interval: timedelta = timedelta(minutes=5)
    bundle_poll_interval: timedelta = timedelta(seconds=1)
    watch_timeout: timedelta = timedelta(seconds=60)
    request_timeout: timedelta = timedelta(seconds=10)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    def __post_init__(self) -> None:
        for name in ("resync_interval", "bundle_poll_interval", "request_timeout"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be positive")


@dataclass
class RootCertControllerStats:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failures: int = 0
    last_failure: str = ""
    bundle_fingerprint: str = ""


def namespace_state(namespace: k8s.V1Namespace, exclude_label: str) -> NamespaceState:
    metadata = namespace.metadata or k8s.V1ObjectMeta()
    labels = metadata.labels or {}
    phase = namespace.status.phase if namespace.status is not None else None
    return NamespaceState(
        name=metadata.name or "",
        excluded=labels.get(exclude_label, "").lower() == "true",
        terminating=phase == "Terminating" or metadata.deletion_timestamp is not None,
    )


def _fingerprint(pem: str) -> str:
    return hashlib.sha256(pem.encode("utf-8")).hexdigest()[:16]


class RootCertController:
    """Keeps ``<config_map_name>`` with the current bundle in every included namespace.

    Implements the singleton-job interface (``name``, ``start()``, ``stop()``): run it on the
    elected leader only.
    """

    name = "root-cert-publisher"

    def __init__(
        self,
        core: k8s.CoreV1Api,
        bundle_source: BundleSource,
        config: RootCertControllerConfig | None = None,
        *,
        unit_random: Callable[[], float] | None = None,
    ) -> None:
        self._core = core
        self._source = bundle_source
        self._config = config or RootCertControllerConfig()
        self._random = unit_random
        self._writer = RootCertWriter(core, request_timeout=self._config.request_timeout)
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._watchers: list[ListWatcher] = []
        self._stopping = threading.Event()
        self.stats = RootCertControllerStats()
        self._reset_state()

    def _reset_state(self) -> None:
        self._namespaces: dict[str, NamespaceState] = {}
        self._config_maps: dict[str, ConfigMapState] = {}
        self._dirty: set[str] = set()
        self._retry_at: dict[str, float] = {}
        self._retry_backoff: dict[str, Backoff] = {}
        self._namespaces_synced = False
        self._config_maps_synced = False
        self._bundle: str | None = None
        self._bundle_nudged = False

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Start the watches and the worker (idempotent)."""
        with self._cond:
            if self._threads:
                return
            self._stopping.clear()
            self._reset_state()
            self._watchers = [self._namespace_watcher(), self._config_map_watcher()]
            self._threads = [
                threading.Thread(target=w.run, name=f"citadel-watch-{i}", daemon=True)
                for i, w in enumerate(self._watchers)
            ]
            self._threads.append(
                threading.Thread(target=self._work, name="citadel-root-cert", daemon=True)
            )
        for thread in self._threads:
            thread.start()
        _log.info("root certificate publisher started (ConfigMap %s)", self._config.config_map_name)

    def stop(self, timeout: timedelta = timedelta(seconds=10)) -> None:
        """Stop every thread and wait for them (bounded by ``timeout``)."""
        with self._cond:
            threads, watchers = self._threads, self._watchers
            self._threads, self._watchers = [], []
            self._stopping.set()
            self._cond.notify_all()
        for watcher in watchers:
            watcher.stop()
        deadline = time.monotonic() + timeout.total_seconds()
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        _log.info("root certificate publisher stopped")

    @property
    def running(self) -> bool:
        return bool(self._threads)

    def bundle_changed(self) -> None:
        """Tell the controller to read the bundle source now (instead of at the next poll)."""
        with self._cond:
            self._bundle_nudged = True
            self._cond.notify_all()

    def observed_namespaces(self) -> dict[str, NamespaceState]:
        """The namespaces as the watches currently see them (a copy)."""
        with self._cond:
            return dict(self._namespaces)

    @property
    def watch_stats(self) -> Mapping[str, ListWatchStats]:
        names = ("namespaces", "configmaps")
        return {n: w.stats for n, w in zip(names, self._watchers, strict=False)}

    # --- watch callbacks (watcher threads) -------------------------------------------------
    def _namespace_watcher(self) -> ListWatcher:
        return ListWatcher(
            name="namespaces",
            list_fn=self._core.list_namespace,
            on_snapshot=self._namespace_snapshot,
            on_event=self._namespace_event,
            watch_timeout=self._config.watch_timeout,
            backoff=self._config.backoff,
            request_timeout=self._config.request_timeout,
            unit_random=self._random,
        )

    def _config_map_watcher(self) -> ListWatcher:
        key, value = self._config.managed_label
        return ListWatcher(
            name="configmaps",
            list_fn=self._core.list_config_map_for_all_namespaces,
            list_kwargs={
                "label_selector": f"{key}={value}",
                "field_selector": f"metadata.name={self._config.config_map_name}",
            },
            on_snapshot=self._config_map_snapshot,
            on_event=self._config_map_event,
            watch_timeout=self._config.watch_timeout,
            backoff=self._config.backoff,
            request_timeout=self._config.request_timeout,
            unit_random=self._random,
        )

    def _namespace_snapshot(self, items: list[Any]) -> None:
        states = [namespace_state(n, self._config.exclude_label) for n in items]
        with self._cond:
            self._namespaces = {s.name: s for s in states if s.name}
            for gone in set(self._config_maps) - set(self._namespaces):
                del self._config_maps[gone]
            self._namespaces_synced = True
            self._dirty = set(self._namespaces)
            self._cond.notify_all()

    def _namespace_event(self, event: WatchEvent) -> None:
        state = namespace_state(event.object, self._config.exclude_label)
        if not state.name:
            return
        with self._cond:
            if event.type == "DELETED":
                self._forget(state.name)
            else:
                self._namespaces[state.name] = state
                self._dirty.add(state.name)
            self._cond.notify_all()

    def _config_map_snapshot(self, items: list[Any]) -> None:
        states = [config_map_state(c) for c in items]
        with self._cond:
            self._config_maps = {s.namespace: s for s in states if s.namespace}
            self._config_maps_synced = True
            self._dirty = set(self._namespaces)
            self._cond.notify_all()

    def _config_map_event(self, event: WatchEvent) -> None:
        state = config_map_state(event.object)
        name = getattr(getattr(event.object, "metadata", None), "name", None)
        if not state.namespace or name != self._config.config_map_name:
            return
        with self._cond:
            if event.type == "DELETED":
                self._config_maps.pop(state.namespace, None)
            else:
                self._config_maps[state.namespace] = state
            self._dirty.add(state.namespace)
            self._cond.notify_all()

    def _forget(self, namespace: str) -> None:
        self._namespaces.pop(namespace, None)
        self._config_maps.pop(namespace, None)
        self._dirty.discard(namespace)
        self._retry_at.pop(namespace, None)
        self._retry_backoff.pop(namespace, None)

    # --- worker ---------------------------------------------------------------------------
    def _work(self) -> None:
        next_poll = 0.0
        next_resync = time.monotonic() + self._config.resync_interval.total_seconds()
        while not self._stopping.is_set():
            now = time.monotonic()
            if now >= next_poll or self._take_nudge():
                self._poll_bundle()
                next_poll = now + self._config.bundle_poll_interval.total_seconds()
            if now >= next_resync:
                with self._cond:
                    self._dirty |= set(self._namespaces)
                next_resync = now + self._config.resync_interval.total_seconds()
            batch = self._take_due(now)
            for namespace in batch:
                if self._stopping.is_set():
                    return
                self._sync(namespace)
            if not batch:
                self._sleep(min(next_poll, next_resync))

    def _take_nudge(self) -> bool:
        with self._cond:
            nudged, self._bundle_nudged = self._bundle_nudged, False
            return nudged

    def _poll_bundle(self) -> None:
        try:
            pem = self._source()
        except Exception as exc:  # a broken source must not stop publication of the last bundle
            _log.warning(
                "trust bundle source failed (%s); keeping the last bundle", type(exc).__name__
            )
            return
        if pem is not None and not pem.strip():
            pem = None
        with self._cond:
            if pem == self._bundle or pem is None:
                return
            self._bundle = pem
            self._dirty |= set(self._namespaces)
            self._retry_at.clear()
            self._retry_backoff.clear()
        self.stats.bundle_fingerprint = _fingerprint(pem)
        _log.info("trust bundle %s to publish", self.stats.bundle_fingerprint)

    def _take_due(self, now: float) -> list[str]:
        with self._cond:
            if not (self._namespaces_synced and self._config_maps_synced):
                return []
            due = set(self._dirty)
            self._dirty.clear()
            for namespace, when in list(self._retry_at.items()):
                if when <= now:
                    due.add(namespace)
                    del self._retry_at[namespace]
            return sorted(due)

    def _sleep(self, wake_at: float) -> None:
        with self._cond:
            synced = self._namespaces_synced and self._config_maps_synced
            if (synced and self._dirty) or self._bundle_nudged or self._stopping.is_set():
                return
            candidates = [wake_at, *self._retry_at.values()]
            self._cond.wait(max(0.0, min(candidates) - time.monotonic()))

    def _sync(self, namespace: str) -> None:
        with self._cond:
            state = self._namespaces.get(namespace)
            observed = self._config_maps.get(namespace)
            bundle = self._bundle
        if state is None or bundle is None:
            return
        key, value = self._config.managed_label
        desired = DesiredRootCert(
            config_map_name=self._config.config_map_name,
            data_key=self._config.data_key,
            bundle_pem=bundle,
            labels={key: value},
        )
        action = plan_namespace(desired, state, observed)
        if action is None:
            return
        try:
            result = self._writer.apply(desired, action)
        except Exception as exc:  # API trouble: retry this namespace later
            self._schedule_retry(namespace, exc)
            return
        with self._cond:
            self._retry_backoff.pop(namespace, None)
            if namespace in self._namespaces:
                self._config_maps[namespace] = result.state
        if result.outcome is RootCertWriteOutcome.CREATED:
            self.stats.created += 1
        elif result.outcome is RootCertWriteOutcome.UPDATED:
            self.stats.updated += 1
        else:
            self.stats.unchanged += 1
        reason = getattr(action, "reason", "missing")
        _log.info(
            "root cert ConfigMap %s/%s %s (%s; bundle %s)",
            namespace,
            desired.config_map_name,
            result.outcome.value,
            reason,
            self.stats.bundle_fingerprint,
        )

    def _schedule_retry(self, namespace: str, exc: Exception) -> None:
        label = describe_failure(exc) if not hasattr(exc, "message") else str(exc)
        with self._cond:
            backoff = self._retry_backoff.get(namespace)
            if backoff is None:
                policy = self._config.backoff
                backoff = (
                    Backoff(policy)
                    if self._random is None
                    else Backoff(policy, unit_random=self._random)
                )
                self._retry_backoff[namespace] = backoff
            delay = backoff.next_delay().total_seconds()
            self._retry_at[namespace] = time.monotonic() + delay
            self._cond.notify_all()
        self.stats.failures += 1
        self.stats.last_failure = label
        _log.warning(
            "publishing the root cert into %s failed (%s); retrying in %.2fs",
            namespace,
            label,
            delay,
        )
