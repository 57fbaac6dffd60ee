"""A replica's leader election on the CA database: one leader at a time, the singleton jobs
and ``citadel_server_is_leader`` follow the leadership, a lapsed lease is taken over."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, open_ca
from citadel.identity.clock import ManualClock
from citadel.server.config import ServerConfig
from citadel.server.leader_config import LeaderElectionConfig
from citadel.server.metrics import ServerMetrics
from citadel.server.replica import IS_LEADER_METRIC, ROTATION_JOB, ReplicaServices

LEASE = timedelta(seconds=3)


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[CaContext]:
    opened = open_ca(
        CaConfig(data_dir=tmp_path / "ca", key_passphrase=b"test"), clock, init_if_missing=True
    )
    try:
        yield opened
    finally:
        opened.close()


def _config(identity: str, *, automatic_rotation: bool = True) -> ServerConfig:
    election = LeaderElectionConfig(
        identity=identity,
        lease_duration=LEASE,
        renew_deadline=timedelta(seconds=2),
        retry_period=timedelta(milliseconds=500),
    )
    return ServerConfig(workers=1, leader_election=election, automatic_rotation=automatic_rotation)


def _gauge(metrics: ServerMetrics) -> float | None:
    return metrics.registry.get_sample_value(IS_LEADER_METRIC)


@pytest.fixture
def replicas(ca: CaContext) -> Iterator[list[tuple[ReplicaServices, ServerMetrics]]]:
    built = []
    for name in ("replica-a", "replica-b"):
        metrics = ServerMetrics()
        built.append((ReplicaServices(ca=ca, config=_config(name), metrics=metrics), metrics))
    try:
        yield built
    finally:
        for services, _ in built:
            services.stop()


def test_one_replica_leads_runs_the_rotation_schedule_and_reports_it(
    replicas: list[tuple[ReplicaServices, ServerMetrics]],
) -> None:
    (a, a_metrics), (b, b_metrics) = replicas
    assert _gauge(a_metrics) == _gauge(b_metrics) == 0.0
    assert a.election.tick() is True
    assert b.election.tick() is False
    assert (_gauge(a_metrics), _gauge(b_metrics)) == (1.0, 0.0)
    assert a.jobs.running == (ROTATION_JOB,)
    assert b.jobs.running == ()


def test_a_lease_that_was_not_renewed_is_taken_over_and_the_old_leader_steps_down(
    replicas: list[tuple[ReplicaServices, ServerMetrics]], clock: ManualClock
) -> None:
    (a, a_metrics), (b, b_metrics) = replicas
    assert a.election.tick()
    clock.advance(LEASE - timedelta(milliseconds=1))
    assert not b.election.tick()  # still within a's lease
    clock.advance(timedelta(milliseconds=2))
    assert b.election.tick()  # a's lease lapsed
    assert not a.election.tick()  # a learns it lost and stops its jobs
    assert (_gauge(a_metrics), _gauge(b_metrics)) == (0.0, 1.0)
    assert a.jobs.running == ()
    assert b.jobs.running == (ROTATION_JOB,)


def test_stepping_down_releases_the_lock_for_the_next_replica_at_once(
    replicas: list[tuple[ReplicaServices, ServerMetrics]],
) -> None:
    (a, a_metrics), (b, _) = replicas
    assert a.election.tick()
    a.stop()  # stopping steps down and releases the lock
    assert _gauge(a_metrics) == 0.0
    assert b.election.tick()


def test_without_automatic_rotation_the_leader_runs_no_rotation_job(ca: CaContext) -> None:
    metrics = ServerMetrics()
    services = ReplicaServices(
        ca=ca, config=_config("solo", automatic_rotation=False), metrics=metrics
    )
    try:
        assert services.election.tick()
        assert services.jobs.running == ()
        assert _gauge(metrics) == 1.0
    finally:
        services.stop()
