from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from citadel.authz.enforcer import AccessRequest
from citadel.authz.errors import PolicyError
from citadel.authz.policy_store import PolicyStore
from citadel.authz.policy_watcher import PolicyWatcher
from citadel.identity.clock import ManualClock
from tests.unit.authz.conftest import (
    BACKEND,
    FRONTEND,
    WritePolicy,
    allow_policy,
    request_authentication,
)
from tests.unit.authz.servers import JwksHttpServer
from tests.unit.authz.tokens import Signer, jwks_of, standard_claims


def _failures() -> float:
    return REGISTRY.get_sample_value("citadel_authz_policy_reload_failures_total") or 0.0


def _allowed(store: PolicyStore, principal: str) -> bool:
    return store.check(AccessRequest(peer_principal=principal)).allowed


def _wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_malformed_policy_at_startup_raises(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy("p.yaml", "spec: [")
    with pytest.raises(PolicyError, match=r"p\.yaml: not valid YAML"):
        PolicyStore(policy_dir, clock=clock)


def test_reload_applies_a_valid_change(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy("p.yaml", allow_policy("p", principals=[FRONTEND]))
    store = PolicyStore(policy_dir, clock=clock)
    assert (store.generation, _allowed(store, BACKEND)) == (1, False)
    write_policy("p.yaml", allow_policy("p", principals=[BACKEND]))
    assert store.reload()
    assert (store.generation, _allowed(store, BACKEND), store.last_error) == (2, True, None)


def test_reload_refuses_malformed_policy_and_keeps_the_old_one(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy("p.yaml", allow_policy("p", principals=[FRONTEND]))
    store = PolicyStore(policy_dir, clock=clock)
    before = _failures()
    write_policy("p.yaml", allow_policy("p", principals=["spiffe://example.org/ns/a/"]))
    assert not store.reload()
    assert _failures() == before + 1
    assert store.last_error is not None
    assert store.last_error.field == "spec.rules[0].from[0].source.principals[0]"
    assert store.generation == 1
    assert _allowed(store, FRONTEND) and not _allowed(store, BACKEND)


def test_reload_keeps_cached_url_keys(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock, signer: Signer
) -> None:
    with JwksHttpServer(json.dumps(jwks_of(signer)).encode()) as server:
        write_policy("ra.yaml", request_authentication(jwks_uri=server.url))
        write_policy("p.yaml", allow_policy("p"))
        store = PolicyStore(policy_dir, clock=clock)
        request = AccessRequest(
            headers={"authorization": (f"Bearer {signer.token(standard_claims(clock.now()))}",)}
        )
        assert store.check(request).allowed
        write_policy("q.yaml", allow_policy("q", principals=[FRONTEND]))
        assert store.reload()
        assert store.check(request).allowed
        assert server.requests == 1


def test_watcher_reloads_after_a_change(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy("p.yaml", allow_policy("p", principals=[FRONTEND]))
    store = PolicyStore(policy_dir, clock=clock)
    with PolicyWatcher(store, debounce=timedelta(milliseconds=50)):
        write_policy("p.yaml", allow_policy("p", principals=[BACKEND]))
        assert _wait_for(lambda: _allowed(store, BACKEND))
    assert store.generation >= 2


def test_watcher_keeps_old_policy_when_the_new_file_is_malformed(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy("p.yaml", allow_policy("p", principals=[FRONTEND]))
    store = PolicyStore(policy_dir, clock=clock)
    before = _failures()
    with PolicyWatcher(store, debounce=timedelta(milliseconds=50)):
        write_policy("p.yaml", "apiVersion: [")
        assert _wait_for(lambda: _failures() > before)
    assert store.generation == 1
    assert store.last_error is not None and "not valid YAML" in str(store.last_error)
    assert _allowed(store, FRONTEND)


def test_stopped_watcher_no_longer_reloads(
    write_policy: WritePolicy, policy_dir: Path, clock: ManualClock
) -> None:
    write_policy("p.yaml", allow_policy("p", principals=[FRONTEND]))
    store = PolicyStore(policy_dir, clock=clock)
    watcher = PolicyWatcher(store, debounce=timedelta(milliseconds=50))
    watcher.start()
    watcher.stop()
    write_policy("p.yaml", allow_policy("p", principals=[BACKEND]))
    time.sleep(0.3)
    assert store.generation == 1
