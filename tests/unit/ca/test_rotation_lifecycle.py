"""The lifecycle services a serving process runs (one call for the server): changes made
by another process (the CLI, another replica) reach the issuer, the CRLs and the revocation
index within a few polls."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509

from citadel.ca.config import CaConfig
from citadel.ca.context import CaContext, init_ca, open_ca
from citadel.ca.issuer import SignParams
from citadel.ca.lifecycle import CaLifecycle, LifecycleOptions, open_serving_ca, start_ca_lifecycle
from citadel.ca.revocation import Revoker
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.slots import Slot
from citadel.ca.rotation.steps import AuthorityRotation
from citadel.identity.clock import ManualClock, SystemClock
from citadel.identity.keys import generate_private_key
from citadel.identity.spiffe_id import TrustDomain
from tests.unit.ca.lifecycle_kit import OperatorCa, write_plugin_dir

TD = TrustDomain("example.org")
FAST = LifecycleOptions(
    watch_interval=timedelta(milliseconds=100),
    rotation=RotationPolicy(automatic=False, propagation_delay=timedelta(0)),
)


def _wait(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


@pytest.fixture
def config(tmp_path: Path) -> CaConfig:
    return CaConfig(data_dir=tmp_path / "data", trust_domain=TD, key_passphrase=b"pw")


@pytest.fixture
def served(config: CaConfig) -> Iterator[tuple[CaContext, CaLifecycle]]:
    init_ca(config).close()
    ca = open_ca(config)
    lifecycle = start_ca_lifecycle(ca, FAST)
    try:
        yield ca, lifecycle
    finally:
        lifecycle.close()
        ca.close()


def _issue(ca: CaContext) -> x509.Certificate:
    chain = ca.issuer.issue(
        generate_private_key().public_key(),
        SignParams(spiffe_id=TD.spiffe_id("/ns/a/sa/b"), requester="test"),
    )
    return chain.leaf


def test_a_rotation_done_by_another_process_reaches_the_serving_issuer(
    served: tuple[CaContext, CaLifecycle], config: CaConfig
) -> None:
    ca, lifecycle = served
    version = lifecycle.bundle_version()
    with open_ca(config) as other:  # the CLI, or another replica
        AuthorityRotation(
            repository=other.repository,
            key_manager=other.key_manager,
            clock=other.clock,
            config=config,
        ).prepare(Slot.ROOT)
    assert _wait(lambda: len(ca.issuer.trust_bundle().x509_authorities) == 2)
    assert lifecycle.bundle_version() != version


def test_a_revocation_done_elsewhere_is_refused_and_published_within_seconds(
    served: tuple[CaContext, CaLifecycle], config: CaConfig
) -> None:
    ca, lifecycle = served
    leaf = _issue(ca)
    assert not lifecycle.is_certificate_revoked(leaf)
    with open_ca(config) as other:
        Revoker(repository=other.repository, clock=other.clock).revoke_serial(
            format(leaf.serial_number, "x"), "keyCompromise"
        )
    assert _wait(lambda: lifecycle.is_certificate_revoked(leaf))
    assert lifecycle.is_revoked(format(leaf.serial_number, "X"))

    def listed() -> bool:
        crls = [x509.load_der_x509_crl(d) for d in lifecycle.current_crls()]
        return any(c.get_revoked_certificate_by_serial_number(leaf.serial_number) for c in crls)

    assert _wait(listed)


def test_acknowledgements_reach_the_snapshot_status_reads(
    served: tuple[CaContext, CaLifecycle], config: CaConfig
) -> None:
    _, lifecycle = served
    lifecycle.record_bundle_ack("spiffe://example.org/agent/1", lifecycle.bundle_version())
    path = config.data_dir / "bundle-acks.json"
    assert _wait(path.exists)


def test_a_serving_ca_can_start_from_a_plugin_directory(tmp_path: Path, config: CaConfig) -> None:
    now = ManualClock(SystemClock().now())
    operator = OperatorCa.root(now, "op")
    signer = operator.issue_ca(now, "signer")
    plugin_dir = write_plugin_dir(tmp_path / "plugin", signer, (), (operator.cert,))
    ca = open_serving_ca(config, plugin_dir=plugin_dir)
    lifecycle = start_ca_lifecycle(
        ca, LifecycleOptions(plugin_dir=plugin_dir, watch_interval=timedelta(seconds=1))
    )
    try:
        assert ca.issuer.signer.cert == signer.cert
        assert lifecycle.plugin is not None and lifecycle.plugin.last_error is None
        assert ca.issuer.trust_bundle().x509_authorities == (operator.cert,)
    finally:
        lifecycle.close()
        ca.close()
