"""Two real ``citadel serve`` replicas on one real PostgreSQL database.

Both serve CSRs at the same time (TokenReview through a fake API server), sign with the same
authorities (shared key directory), never hand out one serial twice and keep one audit chain;
a rotation made through the CLI reaches both within seconds; one of them leads, and a killed
leader is replaced within the lease.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from citadel.identity.pem import certificate_fingerprint, serial_hex
from citadel.store.repository import Repository
from tests.fakes.kube_api_server import status_response
from tests.integration.replicas.conftest import (
    KubeApi,
    ReplicaSet,
    Workload,
    create_database,
    drop_database,
    leaf_of,
    workload,
)
from tests.integration.replicas.replica_process import citadel_cli, wait_until
from tests.peers.postgres import PostgresServer

pytestmark = pytest.mark.integration

LEASE_SECONDS = 3.0
RETRY_SECONDS = 0.5


def _sign_concurrently(
    pair: ReplicaSet, works: list[Workload], *, threads: int, per_thread: int
) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Each thread alternates between the replicas; returns (replica, chain) and errors."""
    results: list[tuple[str, list[str]]] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(threads)

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        for n in range(per_thread):
            replica = pair.replicas[(index + n) % len(pair.replicas)]
            work = works[(index * per_thread + n) % len(works)]
            try:
                chain = pair.sign(replica, work, n)
            except grpc.RpcError as exc:
                with lock:
                    errors.append(f"{replica.name}: {exc.code()} {exc.details()}")
                continue
            with lock:
                results.append((replica.name, chain))

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return results, errors


def _stored_serials(db_url: str) -> tuple[set[str], int]:
    """Every stored certificate serial and the number of ``issue`` audit events."""
    repository = Repository.open(db_url, auto_upgrade=False)
    try:
        serials = {c.serial_hex for c in repository.list_certificates(limit=10_000)}
        issued, after = 0, 0
        while page := repository.list_audit(after_seq=after, limit=10_000):
            issued += sum(1 for event in page if event.action == "issue")
            after = page[-1].seq
    finally:
        repository.close()
    return serials, issued


def test_two_replicas_sign_concurrently_with_unique_serials_one_signer_and_one_audit_chain(
    replica_pair: ReplicaSet, kube_api: KubeApi
) -> None:
    works = [workload(kube_api, f"concurrent-{i}") for i in range(12)]
    results, errors = _sign_concurrently(replica_pair, works, threads=8, per_thread=20)

    assert errors == []
    by_replica = Counter(name for name, _ in results)
    assert by_replica["a"] >= 60 and by_replica["b"] >= 60, by_replica
    serials = [serial_hex(leaf_of(chain)) for _, chain in results]
    assert len(set(serials)) == len(serials) == 160
    # Same authorities on both replicas: one intermediate and one root bundle in every chain.
    assert len({tuple(chain[1:]) for _, chain in results}) == 1
    stored, issue_events = _stored_serials(replica_pair.db_url)
    assert set(serials) <= stored
    assert issue_events == len(stored)  # one audit event per stored certificate, no more
    verified = citadel_cli(
        replica_pair.db_url, replica_pair.replicas[0].data_dir, "audit", "verify"
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_an_intermediate_rotated_through_the_cli_reaches_both_replicas_within_seconds(
    replica_pair: ReplicaSet, kube_api: KubeApi
) -> None:
    work = workload(kube_api, "rotation-watcher")
    before = {r.name: replica_pair.sign(r, work)[1] for r in replica_pair.replicas}
    assert len(set(before.values())) == 1

    replica_pair.cli("ca", "rotate", "prepare", "--intermediate")
    replica_pair.cli("ca", "rotate", "activate", "--intermediate", "--force")
    activated = time.monotonic()
    repository = Repository.open(replica_pair.db_url, auto_upgrade=False)
    try:
        active = repository.list_authorities(kind="intermediate", states=["active"])
    finally:
        repository.close()
    newest = max(active, key=lambda r: r.activated_at or r.created_at)

    def signs_with_new_intermediate(name: str) -> bool:
        replica = next(r for r in replica_pair.replicas if r.name == name)
        intermediate = x509.load_pem_x509_certificate(replica_pair.sign(replica, work)[1].encode())
        return certificate_fingerprint(intermediate) == newest.fingerprint_sha256

    delays = {}
    for name in ("a", "b"):
        waited = wait_until(lambda n=name: signs_with_new_intermediate(n), timeout=10, interval=0.2)
        assert waited is not None, f"replica {name} still signs with the old intermediate"
        delays[name] = time.monotonic() - activated
    assert max(delays.values()) < 5.0, delays


def test_token_review_outage_is_unavailable_to_the_caller_and_the_next_call_succeeds(
    replica_pair: ReplicaSet, kube_api: KubeApi
) -> None:
    reviewed = workload(kube_api, "reviewed-before-the-outage")
    for replica in replica_pair.replicas:
        replica_pair.sign(replica, reviewed)  # its positive review is now cached
    fresh = workload(kube_api, "first-seen-during-the-outage")
    kube_api.reviews.failure = status_response(500, "InternalError", "etcdserver: leader changed")
    try:
        for replica in replica_pair.replicas:
            assert replica_pair.sign_code(replica, fresh) == grpc.StatusCode.UNAVAILABLE
            assert replica_pair.sign_code(replica, reviewed) == grpc.StatusCode.OK
    finally:
        kube_api.reviews.failure = None
    for replica in replica_pair.replicas:
        assert replica_pair.sign_code(replica, fresh) == grpc.StatusCode.OK
        assert replica.running


def test_killing_the_leader_moves_leadership_to_the_other_replica_within_the_lease(
    replica_pair: ReplicaSet, kube_api: KubeApi
) -> None:
    assert wait_until(lambda: len(replica_pair.leaders()) == 1, timeout=10) is not None
    (leader_name,) = replica_pair.leaders()
    leader = next(r for r in replica_pair.replicas if r.name == leader_name)
    survivor = next(r for r in replica_pair.replicas if r.name != leader_name)
    work = workload(kube_api, "leader-kill")
    try:
        leader.kill()
        took = wait_until(survivor.is_leader, timeout=LEASE_SECONDS + 5, interval=0.05)
        assert took is not None, survivor.log()
        # The lock expires LEASE after the dead leader's last renewal; the survivor tries
        # every RETRY (with jitter), so it leads within one lease and one retry period.
        assert took <= LEASE_SECONDS + RETRY_SECONDS * 1.2 + 1.0, took  # 1 s: scheduling, polling
        assert replica_pair.sign_code(survivor, work) == grpc.StatusCode.OK
    finally:
        leader.start()  # the restarted replica joins as a follower
    time.sleep(RETRY_SECONDS * 3)
    assert replica_pair.leaders() == [survivor.name]
    assert replica_pair.sign_code(leader, work) == grpc.StatusCode.OK


def test_a_leader_lock_held_by_someone_else_is_respected_until_released(
    postgres_server: PostgresServer, kube_api: KubeApi, tmp_path: Path
) -> None:
    url = create_database(postgres_server)
    repository = Repository.open(url)
    replicas = ReplicaSet(workdir=tmp_path, db_url=url, kube=kube_api)
    try:
        held = repository.try_acquire_lock(
            "citadel-leader", "maintenance-window", timedelta(minutes=5), datetime.now(UTC)
        )
        assert held
        solo = replicas.add("solo")
        replicas.start_all()
        work = workload(kube_api, "lock-respected")
        observed_until = time.monotonic() + LEASE_SECONDS + 1.0
        while time.monotonic() < observed_until:
            assert not solo.is_leader()
            time.sleep(0.2)
        assert replicas.sign_code(solo, work) == grpc.StatusCode.OK  # followers serve CSRs
        assert repository.release_lock("citadel-leader", "maintenance-window")
        took = wait_until(solo.is_leader, timeout=RETRY_SECONDS * 4 + 2)
        assert took is not None, solo.log()
    finally:
        replicas.close()
        repository.close()
        drop_database(postgres_server, url)
