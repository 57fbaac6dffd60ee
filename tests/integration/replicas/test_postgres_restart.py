"""A PostgreSQL restart in the middle of signing: callers get UNAVAILABLE (never a wrong or
unrecorded certificate), signing resumes by itself once the database is back, the replica
leads again, and the audit chain has no half-written event."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from citadel.identity.pem import serial_hex
from citadel.store.repository import Repository
from tests.integration.replicas.conftest import KubeApi, ReplicaSet, Workload, leaf_of, workload
from tests.integration.replicas.replica_process import citadel_cli, wait_until
from tests.peers.postgres import (
    PostgresServer,
    restart_postgres,
    running_postgres,
    stop_postgres,
)

pytestmark = pytest.mark.integration

DOWNTIME_SECONDS = 2.5


@dataclass
class Outcome:
    at: float
    code: grpc.StatusCode
    serial: str | None = None


@dataclass
class SigningLoad:
    """Threads that sign continuously until stopped, recording every outcome."""

    replicas: ReplicaSet
    works: list[Workload]
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, index: int) -> None:
        replica = self.replicas.replicas[0]
        n = 0
        while not self._stop.is_set():
            work = self.works[(index + n) % len(self.works)]
            n += 1
            try:
                chain = self.replicas.sign(replica, work, n)
            except grpc.RpcError as exc:
                outcome = Outcome(time.monotonic(), exc.code())
                time.sleep(0.05)
            else:
                outcome = Outcome(time.monotonic(), grpc.StatusCode.OK, serial_hex(leaf_of(chain)))
            with self._lock:
                self.outcomes.append(outcome)

    def start(self, threads: int) -> None:
        for index in range(threads):
            thread = threading.Thread(target=self._run, args=(index,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        with self._lock:
            return list(self.outcomes)

    def succeeded_after(self, moment: float) -> bool:
        with self._lock:
            return any(o.at > moment and o.code == grpc.StatusCode.OK for o in self.outcomes)


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def test_a_postgres_restart_during_signing_fails_cleanly_and_signing_resumes(
    private_postgres: PostgresServer, kube_api: KubeApi, tmp_path: Path
) -> None:
    url = private_postgres.url()
    replicas = ReplicaSet(workdir=tmp_path, db_url=url, kube=kube_api)
    load: SigningLoad | None = None
    try:
        solo = replicas.add("solo")
        replicas.start_all()
        works = [workload(kube_api, f"restart-{i}") for i in range(6)]
        for work in works:  # reviewed and cached: the outage is the database's alone
            replicas.sign(solo, work)
        assert wait_until(solo.is_leader, timeout=10) is not None
        load = SigningLoad(replicas, works)
        load.start(threads=4)
        time.sleep(1.0)
        stop_postgres(private_postgres, remove=False)
        down_at = time.monotonic()
        time.sleep(DOWNTIME_SECONDS)
        restarting_at = time.monotonic()
        restart_postgres(private_postgres)
        up_at = time.monotonic()
        resumed = wait_until(lambda: load is not None and load.succeeded_after(up_at), timeout=20)
        outcomes = load.stop()
        assert resumed is not None, solo.log()
        assert solo.running
        codes = {o.code for o in outcomes}
        assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}, codes
        during = [o for o in outcomes if down_at + 0.5 < o.at < restarting_at]
        assert during and all(o.code == grpc.StatusCode.UNAVAILABLE for o in during)
        assert any(o.code == grpc.StatusCode.OK and o.at < down_at for o in outcomes)
        # Leadership comes back once the lock row can be written again.
        assert wait_until(solo.is_leader, timeout=10) is not None, solo.log()
    finally:
        if load is not None:
            load.stop()
        replicas.close()
    served = {o.serial for o in outcomes if o.serial is not None}
    repository = Repository.open(url, auto_upgrade=False)
    try:
        stored = {c.serial_hex for c in repository.list_certificates(limit=10_000)}
    finally:
        repository.close()
    assert served <= stored  # every certificate a caller received is recorded
    verified = citadel_cli(url, solo.data_dir, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
