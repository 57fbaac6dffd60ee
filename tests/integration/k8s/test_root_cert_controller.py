"""Root-cert publication through the real client against the fake API server.

Every namespace gets ``istio-ca-root-cert`` with the current bundle; edits and deletions are
repaired; excluded namespaces are left alone; API failures are retried and never stop it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from typing import Any

import pytest

from citadel.k8s.backoff import BackoffPolicy
from citadel.k8s.root_cert_controller import RootCertController, RootCertControllerConfig
from citadel.k8s.singleton_jobs import SingletonJob
from tests.integration.k8s.conftest import FakeCluster, eventually
from tests.unit.k8s.pki_helpers import make_ca

NAME = "istio-ca-root-cert"
LABEL = {"citadel.io/root-cert": "true"}
ROOT_A = make_ca("root-a").cert_pem.decode()
ROOT_B = make_ca("root-b").cert_pem.decode()
CONFIG_MAPS = r"/api/v1/namespaces/[^/]+/configmaps(/[^/]+)?"


class Bundle:
    """A bundle source the test can change (the CA wires the real one)."""

    def __init__(self, pem: str | None) -> None:
        self._lock = threading.Lock()
        self._pem = pem
        self.fail = False

    def set(self, pem: str) -> None:
        with self._lock:
            self._pem = pem

    def __call__(self) -> str | None:
        with self._lock:
            if self.fail:
                raise RuntimeError("bundle source broken")
            return self._pem


@pytest.fixture
def bundle() -> Bundle:
    return Bundle(ROOT_A)


@pytest.fixture
def controller(cluster: FakeCluster, bundle: Bundle) -> Iterator[RootCertController]:
    for namespace in ("default", "kube-system", "apps"):
        cluster.objects.put_namespace(namespace)
    config = RootCertControllerConfig(
        bundle_poll_interval=timedelta(milliseconds=50),
        watch_timeout=timedelta(seconds=2),
        request_timeout=timedelta(seconds=2),
        backoff=BackoffPolicy(base=timedelta(milliseconds=20), cap=timedelta(milliseconds=200)),
    )
    built = RootCertController(cluster.apis.core, bundle, config)
    _: SingletonJob = built
    built.start()
    try:
        yield built
    finally:
        built.stop(timeout=timedelta(seconds=10))


def published(cluster: FakeCluster, namespace: str, pem: str) -> bool:
    found = cluster.objects.config_map(namespace, NAME)
    return found is not None and found.get("data") == {"root-cert.pem": pem}


def data_of(cluster: FakeCluster, namespace: str) -> dict[str, Any] | None:
    found = cluster.objects.config_map(namespace, NAME)
    return None if found is None else found.get("data")


def test_every_namespace_gets_the_root_cert_config_map(
    cluster: FakeCluster, controller: RootCertController
) -> None:
    for namespace in ("default", "kube-system", "apps"):
        eventually(partial(published, cluster, namespace, ROOT_A), what=namespace)
    stored = cluster.objects.config_map("apps", NAME)
    assert stored is not None
    assert stored["metadata"]["labels"] == LABEL


def test_a_new_namespace_gets_it_on_creation(
    cluster: FakeCluster, controller: RootCertController
) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    cluster.objects.put_namespace("late-team")
    eventually(lambda: published(cluster, "late-team", ROOT_A), what="the new namespace")


def test_a_bundle_change_is_published_everywhere(
    cluster: FakeCluster, controller: RootCertController, bundle: Bundle
) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    bundle.set(ROOT_A + ROOT_B)
    controller.bundle_changed()
    for namespace in ("default", "kube-system", "apps"):
        eventually(partial(published, cluster, namespace, ROOT_A + ROOT_B), what=namespace)


def test_config_map_with_foreign_content_is_repaired(
    cluster: FakeCluster, controller: RootCertController
) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    cluster.objects.put(
        "configmaps",
        "apps",
        {
            "metadata": {"name": NAME, "labels": LABEL},
            "data": {"root-cert.pem": ROOT_B, "extra": "x"},
        },
    )
    eventually(lambda: published(cluster, "apps", ROOT_A), what="the repair")


def test_config_map_whose_label_was_removed_is_repaired(
    cluster: FakeCluster, controller: RootCertController
) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    cluster.objects.put(
        "configmaps", "apps", {"metadata": {"name": NAME}, "data": {"root-cert.pem": ROOT_B}}
    )
    eventually(lambda: published(cluster, "apps", ROOT_A), what="the repair")
    stored = cluster.objects.config_map("apps", NAME)
    assert stored is not None and stored["metadata"]["labels"] == LABEL


def test_a_deleted_config_map_is_recreated(
    cluster: FakeCluster, controller: RootCertController
) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    cluster.objects.delete("configmaps", "apps", NAME)
    eventually(lambda: published(cluster, "apps", ROOT_A), what="the re-creation")


def test_a_foreign_config_map_present_before_start_is_taken_over(
    cluster: FakeCluster, bundle: Bundle
) -> None:
    cluster.objects.put_namespace("apps")
    cluster.objects.put(
        "configmaps", "apps", {"metadata": {"name": NAME}, "data": {"root-cert.pem": "junk"}}
    )
    controller = RootCertController(
        cluster.apis.core,
        bundle,
        RootCertControllerConfig(watch_timeout=timedelta(seconds=2)),
    )
    controller.start()
    try:
        eventually(lambda: published(cluster, "apps", ROOT_A), what="the take-over")
    finally:
        controller.stop()
    assert controller.stats.updated + controller.stats.created >= 1


def test_excluded_namespaces_get_nothing_and_keep_what_they_have(
    cluster: FakeCluster, controller: RootCertController, bundle: Bundle
) -> None:
    cluster.objects.put_namespace("private", labels={"citadel.io/exclude": "true"})
    eventually(lambda: published(cluster, "apps", ROOT_A))
    cluster.objects.put_namespace("late", labels={})
    eventually(lambda: published(cluster, "late", ROOT_A))
    assert cluster.objects.config_map("private", NAME) is None
    # Excluding a namespace later leaves its ConfigMap as it is (and never deletes it).
    cluster.objects.put_namespace("late", labels={"citadel.io/exclude": "true"})
    eventually(lambda: controller.observed_namespaces()["late"].excluded, what="the exclusion seen")
    bundle.set(ROOT_B)
    controller.bundle_changed()
    eventually(lambda: published(cluster, "apps", ROOT_B))
    assert published(cluster, "late", ROOT_A)
    assert cluster.api.requests_to("DELETE", CONFIG_MAPS) == []


def test_including_a_namespace_again_publishes_to_it(
    cluster: FakeCluster, controller: RootCertController
) -> None:
    cluster.objects.put_namespace("private", labels={"citadel.io/exclude": "true"})
    eventually(lambda: published(cluster, "apps", ROOT_A))
    cluster.objects.put_namespace("private", labels={"citadel.io/exclude": "false"})
    eventually(lambda: published(cluster, "private", ROOT_A), what="the re-included namespace")


def test_api_server_500s_on_writes_are_retried_and_the_controller_keeps_going(
    cluster: FakeCluster, bundle: Bundle
) -> None:
    cluster.objects.put_namespace("apps")
    cluster.objects.fail_requests("POST", CONFIG_MAPS, status=500, times=5)
    controller = RootCertController(
        cluster.apis.core,
        bundle,
        RootCertControllerConfig(
            watch_timeout=timedelta(seconds=2),
            backoff=BackoffPolicy(base=timedelta(milliseconds=20), cap=timedelta(milliseconds=100)),
        ),
    )
    controller.start()
    try:
        eventually(lambda: published(cluster, "apps", ROOT_A), what="publication after 500s")
        assert controller.stats.failures == 5
        cluster.objects.put_namespace("next")
        eventually(lambda: published(cluster, "next", ROOT_A), what="later work")
    finally:
        controller.stop()


def test_retries_back_off_instead_of_hammering_the_api_server(
    cluster: FakeCluster, bundle: Bundle
) -> None:
    cluster.objects.put_namespace("apps")
    cluster.objects.fail_requests("POST", CONFIG_MAPS, status=503, times=1000)
    controller = RootCertController(
        cluster.apis.core,
        bundle,
        RootCertControllerConfig(
            watch_timeout=timedelta(seconds=2),
            backoff=BackoffPolicy(
                base=timedelta(milliseconds=50), cap=timedelta(milliseconds=400), jitter=0.0
            ),
        ),
    )
    controller.start()
    try:
        eventually(lambda: controller.stats.failures >= 4, what="four failed writes")
        threading.Event().wait(1.0)
        # 50+100+200+400+400... ms: about 5 attempts in 1.5 s, not hundreds.
        assert 4 <= controller.stats.failures <= 8
    finally:
        controller.stop()


def test_watch_expiry_and_drops_do_not_stop_publication(
    cluster: FakeCluster, controller: RootCertController
) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    cluster.objects.compact()
    cluster.objects.expire_watches(times=2)
    cluster.objects.truncate_watches(times=2)
    cluster.objects.fail_requests("GET", r"/api/v1/(namespaces|configmaps)", times=3)
    cluster.objects.put_namespace("after-trouble")
    eventually(lambda: published(cluster, "after-trouble", ROOT_A), what="publication")
    cluster.objects.delete("configmaps", "apps", NAME)
    eventually(lambda: published(cluster, "apps", ROOT_A), what="repair after trouble")


def test_terminating_namespace_is_skipped(
    cluster: FakeCluster, controller: RootCertController
) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    cluster.objects.put(
        "namespaces",
        "",
        {
            "metadata": {"name": "dying", "deletionTimestamp": "2026-06-01T12:00:00Z"},
            "status": {"phase": "Terminating"},
        },
    )
    eventually(lambda: "dying" in controller.observed_namespaces(), what="the namespace seen")
    cluster.objects.put_namespace("alive")
    eventually(lambda: published(cluster, "alive", ROOT_A))
    assert controller.observed_namespaces()["dying"].terminating
    assert cluster.api.requests_to("POST", r"/api/v1/namespaces/dying/configmaps") == []
    assert controller.stats.failures == 0


def test_a_broken_bundle_source_keeps_the_last_bundle(
    cluster: FakeCluster, controller: RootCertController, bundle: Bundle
) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    bundle.fail = True
    cluster.objects.put_namespace("during-outage")
    eventually(lambda: published(cluster, "during-outage", ROOT_A), what="last bundle used")


def test_nothing_is_written_before_there_is_a_bundle(cluster: FakeCluster) -> None:
    cluster.objects.put_namespace("apps")
    source = Bundle(None)
    controller = RootCertController(
        cluster.apis.core,
        source,
        RootCertControllerConfig(
            watch_timeout=timedelta(seconds=2), bundle_poll_interval=timedelta(milliseconds=20)
        ),
    )
    controller.start()
    try:
        threading.Event().wait(0.3)
        assert cluster.objects.config_map("apps", NAME) is None
        source.set(ROOT_A)
        eventually(lambda: published(cluster, "apps", ROOT_A), what="first publication")
    finally:
        controller.stop()


def test_stop_and_start_again(cluster: FakeCluster, controller: RootCertController) -> None:
    eventually(lambda: published(cluster, "apps", ROOT_A))
    controller.stop()
    assert not controller.running
    cluster.objects.delete("configmaps", "apps", NAME)
    threading.Event().wait(0.2)
    assert cluster.objects.config_map("apps", NAME) is None
    controller.start()
    eventually(lambda: published(cluster, "apps", ROOT_A), what="repair after restart")
