"""The list+watch loop through the real client: resume, relist on 410, back off on failures."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from citadel.k8s.backoff import BackoffPolicy
from citadel.k8s.list_watch import ListWatcher, WatchEvent
from tests.integration.k8s.conftest import FakeCluster, eventually

FAST = BackoffPolicy(base=timedelta(milliseconds=20), cap=timedelta(milliseconds=200))
NAMESPACES = r"/api/v1/namespaces"


class Recorder:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.snapshots: list[list[str]] = []
        self.events: list[tuple[str, str]] = []

    def snapshot(self, items: list[Any]) -> None:
        with self.lock:
            self.snapshots.append(sorted(i.metadata.name for i in items))

    def event(self, event: WatchEvent) -> None:
        with self.lock:
            self.events.append((event.type, event.object.metadata.name))

    def saw(self, kind: str, name: str) -> bool:
        with self.lock:
            return (kind, name) in self.events

    def knows(self, name: str) -> bool:
        """Seen in an ADDED/MODIFIED event or in the latest snapshot."""
        with self.lock:
            latest = self.snapshots[-1] if self.snapshots else []
            return name in latest or any(n == name for t, n in self.events if t != "DELETED")


@pytest.fixture
def watching(cluster: FakeCluster) -> Iterator[tuple[ListWatcher, Recorder]]:
    recorder = Recorder()
    watcher = ListWatcher(
        name="namespaces",
        list_fn=cluster.apis.core.list_namespace,
        on_snapshot=recorder.snapshot,
        on_event=recorder.event,
        watch_timeout=timedelta(seconds=2),
        request_timeout=timedelta(seconds=1),
        backoff=FAST,
    )
    cluster.objects.put_namespace("default")
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: recorder.snapshots, what="the first list")
        yield watcher, recorder
    finally:
        watcher.stop()
        thread.join(5)
        assert not thread.is_alive(), "the watcher did not stop"


def test_namespaces_are_listed_then_watched(
    cluster: FakeCluster, watching: tuple[ListWatcher, Recorder]
) -> None:
    watcher, recorder = watching
    assert recorder.snapshots == [["default"]]
    cluster.objects.put_namespace("apps")
    cluster.objects.put_namespace("apps", labels={"team": "a"})
    cluster.objects.delete_namespace("apps")
    eventually(lambda: recorder.saw("DELETED", "apps"), what="the DELETED event")
    assert [e for e in recorder.events if e[1] == "apps"] == [
        ("ADDED", "apps"),
        ("MODIFIED", "apps"),
        ("DELETED", "apps"),
    ]
    assert watcher.stats.lists == 1


def test_watch_resumes_from_the_last_version_after_the_server_ends_it(
    cluster: FakeCluster, watching: tuple[ListWatcher, Recorder]
) -> None:
    watcher, recorder = watching
    for name in ("ns-0", "ns-1", "ns-2"):
        cluster.objects.put_namespace(name)
        eventually(partial(recorder.saw, "ADDED", name), what=name)
    watches = cluster.api.requests_to("GET", NAMESPACES)
    versions = [r.query.get("resourceVersion", [""])[0] for r in watches if "watch" in r.query]
    assert len(set(versions)) >= 3  # each new watch starts where the last one ended
    assert watcher.stats.lists == 1


def test_expired_history_makes_the_watcher_list_again(
    cluster: FakeCluster, watching: tuple[ListWatcher, Recorder]
) -> None:
    watcher, recorder = watching
    cluster.objects.compact()
    cluster.objects.expire_watches(NAMESPACES)
    eventually(lambda: watcher.stats.lists >= 2, what="a relist after 410")
    cluster.objects.put_namespace("after-410")
    eventually(lambda: recorder.saw("ADDED", "after-410"), what="events after the relist")
    assert watcher.stats.gone >= 1


def test_http_410_on_the_watch_request_also_relists(
    cluster: FakeCluster, watching: tuple[ListWatcher, Recorder]
) -> None:
    watcher, _ = watching
    cluster.objects.fail_requests("GET", NAMESPACES, status=410, watch_only=True)
    eventually(lambda: watcher.stats.lists >= 2, what="a relist after HTTP 410")


def test_api_server_500s_on_the_watch_are_retried_with_backoff_without_relisting(
    cluster: FakeCluster, watching: tuple[ListWatcher, Recorder]
) -> None:
    watcher, recorder = watching
    cluster.objects.fail_requests("GET", NAMESPACES, status=500, times=4, watch_only=True)
    eventually(lambda: watcher.stats.failures >= 4, what="four failed watches")
    cluster.objects.put_namespace("after-500s")
    eventually(lambda: recorder.saw("ADDED", "after-500s"), what="events after the 500s")
    assert watcher.stats.lists == 1  # resumed from the known version


def test_a_dropped_watch_stream_is_resumed(
    cluster: FakeCluster, watching: tuple[ListWatcher, Recorder]
) -> None:
    watcher, recorder = watching
    cluster.objects.truncate_watches(NAMESPACES, times=2)
    cluster.objects.put_namespace("through-drops")
    eventually(lambda: recorder.saw("ADDED", "through-drops"), what="the event after two drops")
    assert watcher.stats.failures >= 1


def test_a_stalled_watch_times_out_and_is_resumed(
    cluster: FakeCluster, watching: tuple[ListWatcher, Recorder]
) -> None:
    watcher, recorder = watching
    cluster.objects.stall_watches(6.0, NAMESPACES)
    eventually(lambda: watcher.stats.failures >= 1, timeout=15, what="the client read timeout")
    cluster.objects.put_namespace("after-stall")
    eventually(lambda: recorder.saw("ADDED", "after-stall"), what="events after the stall")


def test_list_failures_at_start_are_retried(cluster: FakeCluster) -> None:
    cluster.objects.fail_requests("GET", NAMESPACES, status=503, times=3)
    recorder = Recorder()
    watcher = ListWatcher(
        name="namespaces",
        list_fn=cluster.apis.core.list_namespace,
        on_snapshot=recorder.snapshot,
        on_event=recorder.event,
        watch_timeout=timedelta(seconds=2),
        request_timeout=timedelta(seconds=1),
        backoff=FAST,
    )
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        eventually(lambda: recorder.snapshots, what="a list after three 503s")
        assert watcher.stats.failures == 3
    finally:
        watcher.stop()
        thread.join(5)


def test_persistent_watch_failures_end_in_a_fresh_list(
    cluster: FakeCluster, watching: tuple[ListWatcher, Recorder]
) -> None:
    watcher, recorder = watching
    cluster.objects.fail_requests("GET", NAMESPACES, status=500, times=6, watch_only=True)
    eventually(lambda: watcher.stats.lists >= 2, what="a relist after five failures in a row")
    cluster.objects.put_namespace("after-relist")
    eventually(lambda: recorder.knows("after-relist"), what="the namespace after the relist")
