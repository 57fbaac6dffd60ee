from __future__ import annotations

import logging
import random
import stat
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.spiffe_id import SpiffeId
from node_agent.cert_writer import CertWriter
from node_agent.credentials import CallAuth, JoinTokenCredential, TokenFileCredential
from node_agent.errors import CaUnreachableError
from node_agent.metrics import AgentMetrics
from node_agent.rotation import BackoffPolicy, RotationPolicy
from node_agent.rotator import CertificateRotator, RotatorSettings
from node_agent.scheduler import Scheduler
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import SecretValidator
from node_agent.secrets import TlsCertificateSecret
from tests.fakes.fake_ca import FakeCa, FakeCaBehaviour, FakePki
from tests.unit.node_agent.conftest import WORKLOAD

ME = SpiffeId.parse(WORKLOAD)


@dataclass
class Unreachable:
    """A CA that is down: every call fails as a connection failure would."""

    calls: int = 0

    def create_certificate(
        self, csr_pem: str, *, ttl: timedelta | None, auth: CallAuth, roots_pem: bytes
    ) -> list[str]:
        self.calls += 1
        raise CaUnreachableError("CA at 127.0.0.1:1 is unreachable (UNAVAILABLE: refused)")


@dataclass
class Switchable:
    """Delegates to the fake CA, or fails as unreachable while ``down``."""

    ca: FakeCa
    down: bool = False
    auths: list[CallAuth] = field(default_factory=list)

    def create_certificate(
        self, csr_pem: str, *, ttl: timedelta | None, auth: CallAuth, roots_pem: bytes
    ) -> list[str]:
        self.auths.append(auth)
        if self.down:
            raise CaUnreachableError("CA at 127.0.0.1:1 is unreachable (UNAVAILABLE: refused)")
        return self.ca.create_certificate(csr_pem, ttl=ttl, auth=auth, roots_pem=roots_pem)


@dataclass
class Rig:
    rotator: CertificateRotator
    cache: SecretCache
    scheduler: Scheduler
    metrics: AgentMetrics
    clock: ManualClock

    def current(self) -> TlsCertificateSecret:
        entry = self.cache.get("default")
        assert entry is not None and isinstance(entry.secret, TlsCertificateSecret)
        return entry.secret

    def csr(self, result: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "citadel_agent_csr_requests_total", {"result": result}
        )
        return value or 0.0

    def gauge(self, name: str) -> float:
        return self.metrics.registry.get_sample_value(name) or 0.0


@pytest.fixture
def roots_file(tmp_path: Path, pki: FakePki) -> Path:
    path = tmp_path / "root-cert.pem"
    path.write_bytes(pki.root_pem)
    return path


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text("a.valid.token")
    return path


def make_rig(
    signer: object,
    clock: ManualClock,
    roots_file: Path,
    bootstrap: object,
    *,
    ttl: timedelta = timedelta(hours=1),
    renew_with_certificate: bool = False,
    writer: CertWriter | None = None,
) -> Rig:
    cache = SecretCache(clock)
    scheduler = Scheduler(clock)
    metrics = AgentMetrics()
    rotator = CertificateRotator(
        RotatorSettings(
            spiffe_id=ME,
            root_bundle_path=roots_file,
            ttl=ttl,
            rotation=RotationPolicy(ratio=0.5, jitter_fraction=0.01),
            backoff=BackoffPolicy(initial=timedelta(seconds=1), maximum=timedelta(seconds=30)),
            renew_with_certificate=renew_with_certificate,
        ),
        signer=signer,  # type: ignore[arg-type]
        bootstrap=bootstrap,  # type: ignore[arg-type]
        cache=cache,
        scheduler=scheduler,
        clock=clock,
        metrics=metrics,
        validator=SecretValidator(),
        rng=random.Random(7),
        writer=writer,
    )
    return Rig(rotator, cache, scheduler, metrics, clock)


def test_first_renewal_publishes_certificate_and_trust_bundle(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    rig = make_rig(FakeCa(pki, clock), clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    assert rig.scheduler.run_due() == 1
    secret = rig.current()
    assert secret.spiffe_id == WORKLOAD
    assert secret.not_after == clock.now() + timedelta(hours=1)
    assert rig.cache.get("ROOTCA") is not None
    assert rig.csr("success") == 1


def test_next_renewal_is_scheduled_from_the_issued_certificate(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    rig = make_rig(FakeCa(pki, clock), clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    issued = rig.current()
    lifetime = issued.not_after - issued.not_before  # 62 minutes (backdated 2)
    due = rig.scheduler.due_at(CertificateRotator.TASK)
    assert due is not None
    expected = issued.not_after - lifetime / 2
    assert abs((due - expected).total_seconds()) <= lifetime.total_seconds() * 0.01


def test_certificate_rotates_when_the_clock_reaches_the_renewal_time(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    rig = make_rig(FakeCa(pki, clock), clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    first = rig.current()
    clock.advance(timedelta(minutes=20))
    assert rig.scheduler.run_due() == 0
    clock.advance(timedelta(minutes=15))
    assert rig.scheduler.run_due() == 1
    assert rig.current().serial_hex != first.serial_hex


def test_unreachable_ca_keeps_the_cached_certificate_and_backs_off(
    pki: FakePki,
    clock: ManualClock,
    roots_file: Path,
    token_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    signer = Switchable(FakeCa(pki, clock))
    rig = make_rig(signer, clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    cached = rig.current()
    signer.down = True
    clock.advance(timedelta(minutes=32))
    with caplog.at_level(logging.WARNING):
        assert rig.scheduler.run_due() == 1
    assert rig.current() == cached
    assert rig.gauge("citadel_agent_ca_unreachable") == 1
    assert rig.csr("ca_unreachable") == 1
    assert "still serving the cached certificate" in caplog.text
    assert cached.serial_hex in caplog.text
    delays = []
    for _ in range(5):
        due = rig.scheduler.due_at(CertificateRotator.TASK)
        assert due is not None
        delays.append((due - clock.now()).total_seconds())
        clock.set(due)
        rig.scheduler.run_due()
    assert delays[0] < delays[1] < delays[2] < delays[3] < delays[4] <= 30 * 1.2
    signer.down = False
    due = rig.scheduler.due_at(CertificateRotator.TASK)
    assert due is not None
    clock.set(due)
    rig.scheduler.run_due()
    assert rig.current().serial_hex != cached.serial_hex
    assert rig.gauge("citadel_agent_ca_unreachable") == 0


def test_retry_is_never_scheduled_after_the_cached_certificate_expires(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    signer = Switchable(FakeCa(pki, clock))
    rig = make_rig(signer, clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    signer.down = True
    clock.set(rig.current().not_after - timedelta(seconds=2))
    rig.scheduler.run_due()
    due = rig.scheduler.due_at(CertificateRotator.TASK)
    assert due is not None and due <= rig.current().not_after


def test_no_ca_at_start_means_no_certificate_and_retries(
    clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    signer = Unreachable()
    rig = make_rig(signer, clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    assert rig.cache.get("default") is None
    assert rig.rotator.last_error is not None and rig.rotator.last_error.kind == "ca_unreachable"
    assert rig.scheduler.due_at(CertificateRotator.TASK) is not None


@pytest.mark.parametrize(
    ("behaviour", "result"),
    [
        (
            FakeCaBehaviour(issue_for=SpiffeId.parse("spiffe://example.org/ns/x/sa/other")),
            "invalid_issued_chain",
        ),
        (FakeCaBehaviour(expired=True), "invalid_issued_chain"),
        (FakeCaBehaviour(single_element=True), "invalid_issued_chain"),
        (FakeCaBehaviour(fail_with=grpc.StatusCode.PERMISSION_DENIED), "ca_rejected"),
    ],
    ids=["wrong-identity", "expired-chain", "one-element-chain", "ca-refuses"],
)
def test_bad_ca_answer_is_rejected_and_the_old_certificate_kept(
    pki: FakePki,
    clock: ManualClock,
    roots_file: Path,
    token_file: Path,
    behaviour: FakeCaBehaviour,
    result: str,
) -> None:
    ca = FakeCa(pki, clock)
    rig = make_rig(ca, clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    cached = rig.current()
    ca.behaviour = behaviour
    rig.rotator.request_renewal()
    rig.scheduler.run_due()
    assert rig.current() == cached
    assert rig.csr(result) == 1
    assert rig.gauge("citadel_agent_renewal_failing") == 1


def test_garbage_token_file_fails_the_renewal_without_calling_the_ca(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    ca = FakeCa(pki, clock)
    rig = make_rig(ca, clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    cached = rig.current()
    token_file.write_bytes(b"\x00\x01garbage\xff")
    calls = len(ca.calls)
    rig.rotator.request_renewal()
    rig.scheduler.run_due()
    assert len(ca.calls) == calls
    assert rig.current() == cached
    assert rig.csr("credential_error") == 1


def test_ca_that_rejects_the_token_is_counted_as_rejected(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    ca = FakeCa(pki, clock, FakeCaBehaviour(required_bearer="the.right.token"))
    rig = make_rig(ca, clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    assert rig.cache.get("default") is None
    assert rig.csr("ca_rejected") == 1
    token_file.write_text("the.right.token")  # the kubelet rotated the projected token
    rig.rotator.request_renewal()
    rig.scheduler.run_due()
    assert rig.cache.get("default") is not None


def test_join_token_is_used_once_then_renewals_use_the_certificate(
    pki: FakePki, clock: ManualClock, roots_file: Path
) -> None:
    signer = Switchable(FakeCa(pki, clock))
    join = JoinTokenCredential(token="j" * 43)
    rig = make_rig(signer, clock, roots_file, join, renew_with_certificate=True)
    rig.rotator.start()
    rig.scheduler.run_due()
    rig.rotator.request_renewal()
    rig.scheduler.run_due()
    assert [a.kind for a in signer.auths] == ["join_token", "current_certificate"]
    first_chain = signer.auths[1].client_chain_pem
    assert first_chain is not None and b"BEGIN CERTIFICATE" in first_chain


def test_unreadable_root_bundle_fails_the_renewal(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    rig = make_rig(FakeCa(pki, clock), clock, roots_file, TokenFileCredential(token_file))
    roots_file.write_text("not a certificate")
    rig.rotator.start()
    rig.scheduler.run_due()
    assert rig.cache.get("default") is None
    assert rig.csr("trust_bundle_unavailable") == 1


def test_each_rotation_uses_a_new_locally_generated_key(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path
) -> None:
    rig = make_rig(FakeCa(pki, clock), clock, roots_file, TokenFileCredential(token_file))
    rig.rotator.start()
    rig.scheduler.run_due()
    first = rig.current()
    rig.rotator.request_renewal()
    rig.scheduler.run_due()
    assert rig.current().private_key_pem != first.private_key_pem


def test_output_directory_gets_the_three_files_with_safe_modes(
    pki: FakePki, clock: ManualClock, roots_file: Path, token_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    rig = make_rig(
        FakeCa(pki, clock),
        clock,
        roots_file,
        TokenFileCredential(token_file),
        writer=CertWriter(out),
    )
    rig.rotator.start()
    rig.scheduler.run_due()
    secret = rig.current()
    assert (out / "cert-chain.pem").read_bytes() == secret.cert_chain_pem
    assert (out / "key.pem").read_bytes() == secret.private_key_pem
    assert (out / "root-cert.pem").read_bytes() == pki.root_pem
    assert stat.S_IMODE((out / "key.pem").stat().st_mode) == 0o600
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
