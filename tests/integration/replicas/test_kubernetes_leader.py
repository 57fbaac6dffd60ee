"""In Kubernetes the replicas elect their leader on the ``citadel-leader`` Lease, and the
leader publishes the CA's trust bundle as ``istio-ca-root-cert`` in every namespace; the real
``kubernetes`` client talks to the fake API server over HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, open_ca
from citadel.k8s.client import KubeClientSettings
from citadel.k8s.lease_elector import MicroTime
from citadel.server.config import KubernetesAuthConfig, ServerConfig
from citadel.server.leader_config import LeaderElectionConfig
from citadel.server.metrics import ServerMetrics
from citadel.server.replica import IS_LEADER_METRIC, ReplicaServices
from tests.fakes.kube_api_objects import KubeObjects
from tests.fakes.kube_api_server import FakeKubeApiServer

pytestmark = pytest.mark.integration

TOKEN = "citadel-pod-token"
NAMESPACE = "citadel-system"


def eventually(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        time.sleep(0.05)


@pytest.fixture
def cluster() -> Iterator[tuple[FakeKubeApiServer, KubeObjects]]:
    api = FakeKubeApiServer(required_token=TOKEN)
    objects = KubeObjects().install(api)
    for namespace in (NAMESPACE, "apps", "default"):
        objects.put_namespace(namespace)
    api.start()
    try:
        yield api, objects
    finally:
        objects.close()
        api.stop()


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[CaContext]:
    opened = open_ca(
        CaConfig(data_dir=tmp_path / "ca", key_passphrase=b"test"), init_if_missing=True
    )
    try:
        yield opened
    finally:
        opened.close()


def test_the_leader_holds_the_lease_publishes_root_certs_and_releases_on_stop(
    cluster: tuple[FakeKubeApiServer, KubeObjects], ca: CaContext
) -> None:
    api, objects = cluster
    config = ServerConfig(
        workers=1,
        kubernetes=KubernetesAuthConfig(
            api=KubeClientSettings(host=api.url, token=TOKEN), publish_root_cert=True
        ),
        leader_election=LeaderElectionConfig(
            backend="kubernetes",
            namespace=NAMESPACE,
            identity="citadel-0",
            lease_duration=timedelta(seconds=3),
            renew_deadline=timedelta(seconds=2),
            retry_period=timedelta(milliseconds=300),
        ),
    )
    metrics = ServerMetrics()
    services = ReplicaServices(
        ca=ca, config=replace(config, automatic_rotation=False), metrics=metrics
    )
    root_pem = ca.issuer.trust_bundle().to_pem()

    def holder() -> str | None:
        lease = objects.get("leases", NAMESPACE, "citadel-leader")
        return None if lease is None else lease["spec"].get("holderIdentity")

    def published(namespace: str) -> bool:
        config_map = objects.config_map(namespace, "istio-ca-root-cert")
        return config_map is not None and config_map["data"]["root-cert.pem"] == root_pem

    services.start()
    try:
        eventually(lambda: holder() == "citadel-0")
        eventually(lambda: metrics.registry.get_sample_value(IS_LEADER_METRIC) == 1.0)
        eventually(lambda: all(published(ns) for ns in (NAMESPACE, "apps", "default")))
    finally:
        # A real API server streams watch headers at once, so a watch stops promptly; the
        # fake long-polls instead: end its pending watches so the publisher stops as fast.
        objects.close()
        services.stop()
    assert holder() is None  # released: a successor need not wait for the lease to run out
    assert metrics.registry.get_sample_value(IS_LEADER_METRIC) == 0.0


def test_a_lease_held_by_another_pod_is_respected(
    cluster: tuple[FakeKubeApiServer, KubeObjects], ca: CaContext
) -> None:
    api, objects = cluster
    now = MicroTime.of(datetime.now(UTC)).isoformat()
    objects.put(
        "leases",
        NAMESPACE,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "citadel-leader", "namespace": NAMESPACE},
            "spec": {
                "holderIdentity": "citadel-other",
                "leaseDurationSeconds": 60,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        },
    )
    config = ServerConfig(
        workers=1,
        kubernetes=KubernetesAuthConfig(api=KubeClientSettings(host=api.url, token=TOKEN)),
        leader_election=LeaderElectionConfig(
            backend="kubernetes", namespace=NAMESPACE, identity="citadel-1"
        ),
        automatic_rotation=False,
    )
    metrics = ServerMetrics()
    services = ReplicaServices(ca=ca, config=config, metrics=metrics)
    try:
        for _ in range(3):
            assert services.election.tick() is False
    finally:
        services.stop()
    lease = objects.get("leases", NAMESPACE, "citadel-leader")
    assert lease is not None and lease["spec"]["holderIdentity"] == "citadel-other"
    assert metrics.registry.get_sample_value(IS_LEADER_METRIC) == 0.0
