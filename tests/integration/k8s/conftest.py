"""The fake API server with namespaces/configmaps/secrets/leases, reached through the real
``kubernetes`` client configured by :mod:`citadel.k8s.client`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client as k8s

from citadel.k8s.client import KubeApis, KubeClientSettings, build_configuration, new_api_client
from tests.fakes.kube_api_objects import KubeObjects
from tests.fakes.kube_api_server import FakeKubeApiServer

TOKEN = "citadel-test-token"


@dataclass
class FakeCluster:
    api: FakeKubeApiServer
    objects: KubeObjects
    apis: KubeApis
    api_client: k8s.ApiClient


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    api = FakeKubeApiServer(required_token=TOKEN)
    objects = KubeObjects().install(api)
    api.start()
    api_client = new_api_client(build_configuration(KubeClientSettings(host=api.url, token=TOKEN)))
    try:
        yield FakeCluster(api, objects, KubeApis.from_client(api_client), api_client)
    finally:
        objects.close()
        api_client.close()  # type: ignore[no-untyped-call]
        api.stop()


def eventually(predicate: Callable[[], object], *, timeout: float = 10.0, what: str = "") -> None:
    """Wait until ``predicate()`` is truthy (bounded; fails with ``what``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
