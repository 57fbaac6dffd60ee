"""Watching a plug-in CA directory: changes are applied once the directory is quiet, and a
partial set written along the way is never installed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.ca.plugin_watch import Debouncer, PluginCa
from citadel.identity.clock import ManualClock
from tests.unit.ca.lifecycle_kit import (
    TRUST_DOMAIN,
    LifecycleCa,
    OperatorCa,
    lifecycle_ca,
    write_plugin_dir,
)

QUIET = timedelta(milliseconds=300)


@pytest.fixture
def ca(tmp_path: Path, clock: ManualClock) -> Iterator[LifecycleCa]:
    with lifecycle_ca(tmp_path, clock) as opened:
        yield opened


def test_a_burst_of_triggers_runs_the_action_once_after_the_quiet_period() -> None:
    calls: list[float] = []
    done = threading.Event()

    def action() -> None:
        calls.append(time.monotonic())
        done.set()

    debouncer = Debouncer(action, QUIET)
    started = time.monotonic()
    for _ in range(5):
        debouncer.trigger()
        time.sleep(0.05)
    assert done.wait(5)
    time.sleep(QUIET.total_seconds() * 2)
    debouncer.close()
    assert len(calls) == 1
    assert calls[0] - started >= QUIET.total_seconds() + 0.2


def test_a_closed_debouncer_never_fires() -> None:
    fired = threading.Event()
    debouncer = Debouncer(fired.set, QUIET)
    debouncer.trigger()
    debouncer.close()
    assert not fired.wait(QUIET.total_seconds() * 3)


def test_the_watcher_installs_a_directory_written_file_by_file_once_it_settles(
    ca: LifecycleCa, tmp_path: Path
) -> None:
    operator = OperatorCa.root(ca.clock, "A")
    signer = operator.issue_ca(ca.clock, "signer")
    directory = tmp_path / "plugin"
    directory.mkdir()
    plugin = PluginCa(
        directory,
        repository=ca.repository,
        key_manager=ca.key_manager,
        clock=ca.clock,
        trust_domain=TRUST_DOMAIN,
        reload=ca.watcher.poll,
        quiet=QUIET,
    )
    plugin.start()
    try:
        staging = write_plugin_dir(
            tmp_path / "staging", signer, (), (ca.bundle()[0], operator.cert)
        )
        for name in ("ca-cert.pem", "cert-chain.pem", "root-cert.pem", "ca-key.pem"):
            (directory / name).write_bytes((staging / name).read_bytes())
            time.sleep(0.05)  # well inside the quiet period
        assert plugin.applied.wait(10)
        assert plugin.last_error is None, plugin.last_error
        assert ca.issuer.signer.cert == signer.cert
        installs = [
            e for e in ca.repository.list_audit(limit=10_000) if e.action == "ca.plugin.install"
        ]
        assert len(installs) == 1
    finally:
        plugin.stop()


def test_a_partial_directory_is_refused_and_the_ca_keeps_signing_with_its_keys(
    ca: LifecycleCa, tmp_path: Path
) -> None:
    operator = OperatorCa.root(ca.clock, "A")
    signer = operator.issue_ca(ca.clock, "signer")
    directory = tmp_path / "plugin"
    directory.mkdir()
    plugin = PluginCa(
        directory,
        repository=ca.repository,
        key_manager=ca.key_manager,
        clock=ca.clock,
        trust_domain=TRUST_DOMAIN,
        reload=ca.watcher.poll,
        quiet=QUIET,
    )
    signer_before = ca.issuer.signer
    before = ca.snapshot()
    plugin.start()
    try:
        write_plugin_dir(
            directory, signer, (), (ca.bundle()[0], operator.cert), skip=("ca-key.pem",)
        )
        assert plugin.applied.wait(10)
        assert plugin.last_error is not None and "ca-key.pem missing" in plugin.last_error
        assert ca.issuer.signer is signer_before
        assert ca.snapshot() == before
        assert ca.issue().intermediates[0] == signer_before.cert
    finally:
        plugin.stop()
