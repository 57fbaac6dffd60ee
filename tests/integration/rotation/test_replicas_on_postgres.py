"""Several CA replicas on one real PostgreSQL database: the automatic rotation runs as a
singleton (the ``ca-rotation`` lock), and every replica's issuer picks up the result."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.authority_watch import AuthorityWatcher
from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, init_ca, open_ca
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.schedule import RotationJob
from citadel.ca.rotation.slots import Slot
from citadel.ca.rotation.steps import AuthorityRotation, StepResult
from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import TrustDomain

pytestmark = pytest.mark.integration

TD = TrustDomain("example.org")
REPLICAS = 3
ROUNDS = 3


@pytest.fixture
def replicas(tmp_path: Path, postgres_db_url: str, clock: ManualClock) -> Iterator[list[CaContext]]:
    # The replicas share the database and (as with an HSM or a mounted secret) the key files.
    config = CaConfig(
        data_dir=tmp_path / "data", trust_domain=TD, db_url=postgres_db_url, key_passphrase=b"pw"
    )
    init_ca(config, clock).close()
    opened = [open_ca(config, clock) for _ in range(REPLICAS)]
    try:
        yield opened
    finally:
        for ca in opened:
            ca.close()


def _rotation(ca: CaContext) -> AuthorityRotation:
    return AuthorityRotation(
        repository=ca.repository,
        key_manager=ca.key_manager,
        clock=ca.clock,
        config=ca.config,
        policy=RotationPolicy(propagation_delay=timedelta(hours=1)),
    )


def _race(jobs: list[RotationJob]) -> list[list[StepResult]]:
    barrier = threading.Barrier(len(jobs))
    results: list[list[StepResult]] = [[] for _ in jobs]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = jobs[index].run_once()
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def test_replicas_racing_on_a_due_rotation_rotate_exactly_once(
    replicas: list[CaContext], clock: ManualClock
) -> None:
    jobs = [RotationJob(_rotation(ca), clock) for ca in replicas]
    root = _rotation(replicas[0]).slots().root
    clock.set(root.not_after - timedelta(days=20))  # the root's preparation is due
    for _ in range(ROUNDS):
        done = [step for steps in _race(jobs) for step in steps]
        prepared_roots = [s for s in done if s.action == "prepare" and s.slot.value == "root"]
        assert len(prepared_roots) <= 1
    audit = replicas[0].repository.list_audit(limit=10_000)
    assert [e.action for e in audit].count("ca.rotate.prepare") == 2  # the root, and the
    # intermediate of the old root (its own thresholds are due too); each exactly once
    states = sorted((r.kind, r.state) for r in replicas[0].repository.list_authorities())
    assert states.count(("root", "prepared")) == 1
    assert replicas[0].repository.verify_audit_chain().ok


def test_every_replica_serves_the_new_bundle_after_one_rotates(
    replicas: list[CaContext], clock: ManualClock
) -> None:
    watchers = [
        AuthorityWatcher(
            repository=ca.repository,
            key_manager=ca.key_manager,
            issuer=ca.issuer,
            clock=clock,
            trust_domain=TD,
        )
        for ca in replicas
    ]
    for watcher in watchers:
        watcher.prime()
    _rotation(replicas[1]).prepare(Slot.ROOT)
    for watcher, ca in zip(watchers, replicas, strict=True):
        assert watcher.poll()
        assert len(ca.issuer.trust_bundle().x509_authorities) == 2
