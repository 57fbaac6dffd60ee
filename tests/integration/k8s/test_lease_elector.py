"""Leader election on a coordination.k8s.io/v1 Lease through the real client."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from citadel.identity.clock import ManualClock, SystemClock
from citadel.k8s.errors import KubeApiRejectedError, KubeApiUnavailableError
from citadel.k8s.leader_election_loop import LeaderElectionLoop
from citadel.k8s.leader_elector import LeaderElector
from citadel.k8s.lease_elector import KubernetesLeaseElector
from citadel.k8s.singleton_jobs import SingletonJobRunner
from tests.integration.k8s.conftest import FakeCluster, eventually

SECOND = timedelta(seconds=1)
NAMESPACE = "citadel-system"
LEASE_PATH = rf"/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/citadel-leader"


def elector(cluster: FakeCluster, identity: str, clock: ManualClock) -> KubernetesLeaseElector:
    built = KubernetesLeaseElector(
        cluster.apis.coordination,
        namespace=NAMESPACE,
        name="citadel-leader",
        identity=identity,
        clock=clock,
        lease_duration=15 * SECOND,
        request_timeout=2 * SECOND,
    )
    _: LeaderElector = built
    return built


def lease(cluster: FakeCluster) -> dict[str, object]:
    found = cluster.objects.get("leases", NAMESPACE, "citadel-leader")
    assert found is not None
    spec = found["spec"]
    assert isinstance(spec, dict)
    return spec


@pytest.fixture(autouse=True)
def _namespace(cluster: FakeCluster) -> None:
    cluster.objects.put_namespace(NAMESPACE)


def test_first_replica_creates_the_lease_and_leads(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    observation = elector(cluster, "pod-a", clock).try_acquire_or_renew()
    assert observation.is_leader
    assert observation.expires_at == clock.now() + 15 * SECOND
    spec = lease(cluster)
    assert spec["holderIdentity"] == "pod-a"
    assert spec["leaseDurationSeconds"] == 15
    # MicroTime: six fraction digits even when the microseconds are zero.
    assert spec["renewTime"] == "2026-06-01T12:00:00.000000Z"
    assert spec["acquireTime"] == "2026-06-01T12:00:00.000000Z"
    assert spec["leaseTransitions"] == 0


def test_a_lease_held_by_someone_else_is_respected(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    elector(cluster, "pod-a", clock).try_acquire_or_renew()
    clock.advance(10 * SECOND)
    observation = elector(cluster, "pod-b", clock).try_acquire_or_renew()
    assert not observation.is_leader
    assert observation.holder == "pod-a"
    assert observation.expires_at == clock.now() + 5 * SECOND
    assert lease(cluster)["holderIdentity"] == "pod-a"
    assert cluster.api.requests_to("PUT", LEASE_PATH) == []


def test_the_holder_renews_and_keeps_its_acquire_time(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    a = elector(cluster, "pod-a", clock)
    a.try_acquire_or_renew()
    clock.advance(2 * SECOND + timedelta(microseconds=5))
    assert a.try_acquire_or_renew().is_leader
    spec = lease(cluster)
    assert spec["renewTime"] == "2026-06-01T12:00:02.000005Z"
    assert spec["acquireTime"] == "2026-06-01T12:00:00.000000Z"


def test_an_expired_lease_is_taken_over(cluster: FakeCluster, clock: ManualClock) -> None:
    elector(cluster, "pod-a", clock).try_acquire_or_renew()
    clock.advance(16 * SECOND)
    assert elector(cluster, "pod-b", clock).try_acquire_or_renew().is_leader
    spec = lease(cluster)
    assert spec["holderIdentity"] == "pod-b"
    assert spec["leaseTransitions"] == 1
    # The old holder finds out at its next round.
    assert not elector(cluster, "pod-a", clock).try_acquire_or_renew().is_leader


def test_a_conflicting_write_is_re_read_and_retried(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    a = elector(cluster, "pod-a", clock)
    a.try_acquire_or_renew()
    cluster.objects.fail_requests("PUT", LEASE_PATH, status=409, times=1)
    clock.advance(2 * SECOND)
    assert a.try_acquire_or_renew().is_leader
    assert len(cluster.api.requests_to("PUT", LEASE_PATH)) == 2


def test_losing_every_race_reports_follower_without_crashing(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    a = elector(cluster, "pod-a", clock)
    a.try_acquire_or_renew()
    cluster.objects.fail_requests("PUT", LEASE_PATH, status=409, times=10)
    clock.advance(2 * SECOND)
    assert a.try_acquire_or_renew().is_leader is False


class InterleavingApi:
    """The real CoordinationV1Api, except that right after the first read another replica's
    round runs: the read this elector acts on is then stale."""

    def __init__(self, api: Any, other_round: Callable[[], object]) -> None:
        self._api = api
        self._other_round: Callable[[], object] | None = other_round

    def read_namespaced_lease(self, *args: Any, **kwargs: Any) -> Any:
        found = self._api.read_namespaced_lease(*args, **kwargs)
        other, self._other_round = self._other_round, None
        if other is not None:
            other()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


def test_a_write_based_on_a_stale_read_gets_409_and_the_winner_is_respected(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    elector(cluster, "pod-a", clock).try_acquire_or_renew()
    clock.advance(20 * SECOND)  # expired for everyone: b and c both decide to take over
    b = elector(cluster, "pod-b", clock)
    c = KubernetesLeaseElector(
        InterleavingApi(cluster.apis.coordination, b.try_acquire_or_renew),  # type: ignore[arg-type]
        namespace=NAMESPACE,
        name="citadel-leader",
        identity="pod-c",
        clock=clock,
    )
    observation = c.try_acquire_or_renew()
    assert observation.is_leader is False
    assert observation.holder == "pod-b"
    assert lease(cluster)["holderIdentity"] == "pod-b"
    puts = cluster.api.requests_to("PUT", LEASE_PATH)
    assert len(puts) == 2  # b's takeover, then c's write at the stale version (409)


def test_concurrent_creation_has_one_winner(cluster: FakeCluster, clock: ManualClock) -> None:
    cluster.objects.fail_requests("GET", LEASE_PATH, status=404, times=1)
    a, b = elector(cluster, "pod-a", clock), elector(cluster, "pod-b", clock)
    assert b.try_acquire_or_renew().is_leader  # b reads "no lease" and creates it
    cluster.objects.fail_requests("GET", LEASE_PATH, status=404, times=1)
    assert a.try_acquire_or_renew().is_leader is False  # a also saw none: its create is a 409
    assert lease(cluster)["holderIdentity"] == "pod-b"


def test_release_lets_the_next_replica_lead_at_once(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    a, b = elector(cluster, "pod-a", clock), elector(cluster, "pod-b", clock)
    a.try_acquire_or_renew()
    a.release()
    assert lease(cluster).get("holderIdentity") is None
    assert b.try_acquire_or_renew().is_leader


def test_release_by_a_non_holder_leaves_the_lease_alone(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    a, b = elector(cluster, "pod-a", clock), elector(cluster, "pod-b", clock)
    a.try_acquire_or_renew()
    b.release()
    assert lease(cluster)["holderIdentity"] == "pod-a"


def test_api_server_500_is_a_typed_unavailable_error(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    cluster.objects.fail_requests("GET", LEASE_PATH, status=500)
    with pytest.raises(KubeApiUnavailableError, match="HTTP 500"):
        elector(cluster, "pod-a", clock).try_acquire_or_renew()


def test_forbidden_is_a_typed_rejection(cluster: FakeCluster, clock: ManualClock) -> None:
    cluster.objects.fail_requests("GET", LEASE_PATH, status=403)
    with pytest.raises(KubeApiRejectedError) as caught:
        elector(cluster, "pod-a", clock).try_acquire_or_renew()
    assert caught.value.status == 403


def test_leader_steps_down_when_the_api_server_fails_past_the_renew_deadline(
    cluster: FakeCluster, clock: ManualClock
) -> None:
    changes: list[bool] = []
    loop = LeaderElectionLoop(
        elector(cluster, "pod-a", clock),
        clock=clock,
        renew_deadline=10 * SECOND,
        retry_period=2 * SECOND,
        listeners=[changes.append],
    )
    assert loop.tick()
    cluster.objects.fail_requests("GET", LEASE_PATH, status=500, times=100)
    for _ in range(4):
        clock.advance(2 * SECOND)
        assert loop.tick()
    clock.advance(2 * SECOND)
    assert loop.tick() is False
    assert changes == [True, False]


def test_singleton_jobs_run_only_on_the_leader_and_fail_over(cluster: FakeCluster) -> None:
    started: dict[str, int] = {"pod-a": 0, "pod-b": 0}
    running: dict[str, bool] = {"pod-a": False, "pod-b": False}

    class Job:
        def __init__(self, owner: str) -> None:
            self.owner = owner

        @property
        def name(self) -> str:
            return "crl-publisher"

        def start(self) -> None:
            started[self.owner] += 1
            running[self.owner] = True

        def stop(self) -> None:
            running[self.owner] = False

    loops = {}
    for owner in ("pod-a", "pod-b"):
        loops[owner] = LeaderElectionLoop(
            KubernetesLeaseElector(
                cluster.apis.coordination,
                namespace=NAMESPACE,
                name="citadel-leader",
                identity=owner,
                clock=SystemClock(),
                lease_duration=3 * SECOND,
                request_timeout=SECOND,
            ),
            clock=SystemClock(),
            renew_deadline=2 * SECOND,
            retry_period=timedelta(milliseconds=100),
            listeners=[SingletonJobRunner([Job(owner)])],
        )
    loops["pod-a"].start()
    try:
        eventually(lambda: running["pod-a"], what="pod-a leading")
        loops["pod-b"].start()
        threading.Event().wait(0.5)
        assert running == {"pod-a": True, "pod-b": False}
        loops["pod-a"].stop()  # steps down, stops its job, releases the lease
        assert running["pod-a"] is False
        eventually(lambda: running["pod-b"], what="pod-b taking over", timeout=5)
        assert started == {"pod-a": 1, "pod-b": 1}
    finally:
        for loop in loops.values():
            loop.stop()
