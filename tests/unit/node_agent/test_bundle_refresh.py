"""The agent takes the CA's roots and CRLs only through its checks, and ROOTCA follows."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import ManualClock
from citadel.identity.pem import certificate_fingerprint
from citadel.identity.spiffe_id import TrustDomain
from node_agent.agent_api_channel import MtlsMaterial
from node_agent.bundle_client import FetchedBundle
from node_agent.bundle_refresh import BundleRefresher
from node_agent.errors import CaRejectedError, CaUnreachableError
from node_agent.metrics import AgentMetrics
from node_agent.scheduler import Scheduler
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import SecretValidator
from node_agent.secrets import TlsCertificateSecret, TrustBundleSecret
from node_agent.trust_bundle import bundle_version
from node_agent.trust_store import TrustStore
from tests.conftest import FIXED_NOW
from tests.fakes.fake_ca import FakePki, make_fake_pki
from tests.unit.node_agent.conftest import MakeTls
from tests.unit.node_agent.crl_kit import crl_der

TD = TrustDomain("example.org")
INTERVAL = timedelta(seconds=2)


@pytest.fixture(scope="module")
def other() -> FakePki:
    return make_fake_pki(around=[FIXED_NOW, datetime.now(UTC)])


@dataclass
class FakeSource:
    """Answers GetBundle from a script (the last entry repeats); records every request."""

    answers: list[FetchedBundle | Exception | None]
    probe_error: Exception | None = None
    requests: list[tuple[str, str]] = field(default_factory=list)
    probes: list[bytes] = field(default_factory=list)

    def fetch(
        self,
        material: MtlsMaterial,
        *,
        trust_domain: TrustDomain,
        acknowledged_version: str = "",
        known_state: str = "",
    ) -> FetchedBundle | None:
        assert trust_domain == TD
        self.requests.append((acknowledged_version, known_state))
        item = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(item, Exception):
            raise item
        return item

    def probe(self, material: MtlsMaterial) -> None:
        self.probes.append(material.roots_pem)
        if self.probe_error is not None:
            raise self.probe_error


def answer(
    roots: Sequence[FakePki], crls: Sequence[bytes] = (), state: str = "s1"
) -> FetchedBundle:
    bundle = TrustBundle(TD, tuple(p.root for p in roots))
    return FetchedBundle(
        bundle=bundle,
        crls=tuple(crls),
        bundle_version=bundle_version(bundle.x509_authorities),
        state=state,
    )


@dataclass
class Rig:
    source: FakeSource
    refresher: BundleRefresher
    trust: TrustStore
    cache: SecretCache
    scheduler: Scheduler
    metrics: AgentMetrics
    clock: ManualClock
    own: list[TlsCertificateSecret | None]

    def rootca(self) -> TrustBundleSecret:
        entry = self.cache.get("ROOTCA")
        assert entry is not None and isinstance(entry.secret, TrustBundleSecret)
        return entry.secret

    def roots(self) -> set[str]:
        return set(self.rootca().root_fingerprints)

    def results(self, result: str) -> float:
        value = self.metrics.registry.get_sample_value(
            "citadel_agent_bundle_refreshes_total", {"result": result}
        )
        return value or 0.0


MakeRig = Callable[..., Rig]


@pytest.fixture
def make_rig(tmp_path: Path, pki: FakePki, clock: ManualClock, make_tls: MakeTls) -> MakeRig:
    def make(
        *answers: FetchedBundle | Exception | None, probe_error: Exception | None = None
    ) -> Rig:
        roots_file = tmp_path / "root-cert.pem"
        roots_file.write_bytes(pki.root_pem)
        cache = SecretCache(clock)
        metrics = AgentMetrics()
        scheduler = Scheduler(clock)
        trust = TrustStore(
            root_file=roots_file, cache=cache, validator=SecretValidator(), metrics=metrics
        )
        trust.trusted_roots(clock.now())  # the bootstrap the rotator does first
        own: list[TlsCertificateSecret | None] = [make_tls()]
        source = FakeSource(list(answers), probe_error=probe_error)
        refresher = BundleRefresher(
            source=source,
            trust=trust,
            own_certificate=lambda: own[0],
            trust_domain=TD,
            scheduler=scheduler,
            clock=clock,
            metrics=metrics,
            interval=INTERVAL,
            rng=random.Random(3),
        )
        return Rig(source, refresher, trust, cache, scheduler, metrics, clock, own)

    return make


def _fp(p: FakePki) -> str:
    return certificate_fingerprint(p.root)


def test_a_prepared_root_joins_rootca_after_the_serving_chain_probe(
    make_rig: MakeRig, pki: FakePki, other: FakePki
) -> None:
    rig = make_rig(answer([pki, other]))
    assert rig.roots() == {_fp(pki)}
    assert rig.refresher.run() is True
    assert rig.roots() == {_fp(pki), _fp(other)}
    assert len(rig.source.probes) == 1 and rig.source.probes[0].count(b"BEGIN CERT") == 2
    assert rig.trust.from_ca and rig.trust.ca_state == "s1"
    assert rig.results("changed") == 1


def test_a_root_the_cas_serving_chain_does_not_verify_with_is_not_taken(
    make_rig: MakeRig, pki: FakePki, other: FakePki
) -> None:
    rig = make_rig(
        answer([pki, other]), answer([other], state="s2"), probe_error=CaUnreachableError("tls")
    )
    assert rig.refresher.run() is False
    assert rig.roots() == {_fp(pki)}  # unchanged: the file's root
    assert not rig.trust.from_ca
    assert rig.results("rejected") == 1
    assert "serving certificate" in (
        rig.refresher.last_error.message if rig.refresher.last_error else ""
    )


def test_a_swapped_root_set_is_refused_and_retried_at_the_normal_interval(
    make_rig: MakeRig, pki: FakePki, other: FakePki
) -> None:
    rig = make_rig(answer([other]))
    assert rig.refresher.run() is False
    assert rig.roots() == {_fp(pki)}
    assert rig.source.probes == []  # refused before any probe
    assert rig.refresher.next_refresh is not None
    assert INTERVAL * 0.8 <= rig.refresher.next_refresh - rig.clock.now() <= INTERVAL


def test_the_root_is_retired_from_rootca_as_a_subset(
    make_rig: MakeRig, pki: FakePki, other: FakePki
) -> None:
    rig = make_rig(answer([pki, other]), answer([other], state="s2"))
    rig.refresher.run()
    assert rig.refresher.run() is True
    assert rig.roots() == {_fp(other)}


def test_polls_acknowledge_the_served_version_and_name_the_state_held(
    make_rig: MakeRig, pki: FakePki, other: FakePki
) -> None:
    rig = make_rig(answer([pki, other]), None)
    rig.refresher.run()
    before = rig.cache.get("ROOTCA")
    assert rig.refresher.run() is False  # unchanged: nothing is republished
    assert rig.cache.get("ROOTCA") is before
    file_version = bundle_version([pki.root])
    assert rig.source.requests == [
        (file_version, ""),
        (bundle_version([pki.root, other.root]), "s1"),
    ]
    assert rig.results("unchanged") == 1


def test_crls_reach_rootca_and_a_revocation_republishes_it(
    make_rig: MakeRig, pki: FakePki, clock: ManualClock
) -> None:
    now = clock.now()
    first = [
        crl_der(pki.root, pki.root_key, now=now),
        crl_der(pki.intermediate, pki.intermediate_key, now=now),
    ]
    revoked = [
        first[0],
        crl_der(pki.intermediate, pki.intermediate_key, now=now, revoked=["abc123"]),
    ]
    rig = make_rig(answer([pki], first), answer([pki], revoked, state="s2"))
    assert rig.refresher.run() is True
    assert rig.rootca().crls_der == tuple(first) and not rig.rootca().crl_leaf_only
    assert rig.source.probes == []  # same roots: nothing to probe
    assert rig.refresher.run() is True
    assert rig.rootca().crls_der == tuple(revoked)


def test_crls_about_to_expire_are_withdrawn_while_the_ca_is_unreachable(
    make_rig: MakeRig, pki: FakePki, clock: ManualClock
) -> None:
    now = clock.now()
    crls = [
        crl_der(pki.root, pki.root_key, now=now, next_update=timedelta(minutes=10)),
        crl_der(pki.intermediate, pki.intermediate_key, now=now, next_update=timedelta(minutes=10)),
    ]
    rig = make_rig(answer([pki], crls), CaUnreachableError("down"))
    rig.refresher.run()
    assert rig.rootca().crls_der
    rig.clock.advance(timedelta(minutes=5))
    rig.refresher.run()
    assert rig.rootca().crls_der  # still valid for a while
    assert rig.refresher.next_refresh is not None
    assert rig.refresher.next_refresh <= now + timedelta(minutes=8)  # woken before they expire
    rig.clock.advance(timedelta(minutes=3, seconds=30))
    rig.refresher.run()
    assert rig.rootca().crls_der == ()  # better no CRL check than Envoy refusing every chain
    assert rig.roots() == {_fp(pki)}


def test_a_ca_that_does_not_serve_the_bundle_is_asked_rarely(
    make_rig: MakeRig, pki: FakePki
) -> None:
    rig = make_rig(CaRejectedError("no", code="PERMISSION_DENIED"))
    assert rig.refresher.run() is False
    assert rig.refresher.next_refresh is not None
    assert rig.refresher.next_refresh - rig.clock.now() >= timedelta(seconds=60)
    assert rig.roots() == {_fp(pki)}  # the root file stays the trust anchor
    assert rig.results("failed") == 1


def test_without_a_certificate_of_its_own_the_agent_does_not_ask(make_rig: MakeRig) -> None:
    rig = make_rig(None)
    rig.own[0] = None
    assert rig.refresher.run() is False
    assert rig.source.requests == []
    assert rig.refresher.next_refresh is not None


def test_after_the_first_ca_bundle_the_root_file_is_bootstrap_only(
    make_rig: MakeRig, pki: FakePki, other: FakePki
) -> None:
    rig = make_rig(answer([pki, other]))
    rig.refresher.run()
    rig.trust.root_file.write_bytes(other.root_pem)
    rig.trust.reload_file(rig.clock.now())
    roots, _ = rig.trust.trusted_roots(rig.clock.now())
    assert {certificate_fingerprint(r) for r in roots} == {_fp(pki), _fp(other)}
    assert rig.roots() == {_fp(pki), _fp(other)}
