"""The per-entry SVID manager against a fake CA stub that can misbehave: an SVID for the wrong
SPIFFE ID, for another key, or from an untrusted CA is refused and never served; a good one
is kept and renewed at the agent's rotate_at instant."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.identity.clock import ManualClock
from citadel.identity.keys import KeyType, generate_private_key, signature_hash_for
from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import parse_selectors
from citadel.identity.spiffe_id import SpiffeId
from citadel.identity.x509_templates import LeafSpec, leaf_builder
from node_agent.entries.records import SvidAnswer, SvidOrder
from node_agent.entries.svid_manager import EntrySvidManager, SvidPolicy
from node_agent.errors import CaRejectedError, CaUnreachableError, IssuedChainError
from node_agent.rotation import BackoffPolicy, RotationPolicy, backoff_delay, rotate_at
from node_agent.scheduler import Scheduler
from tests.conftest import FIXED_NOW
from tests.fixtures.pki import Pki, make_pki

AGENT = SpiffeId.parse("spiffe://example.org/citadel/agent/node-1")
WEB = SpiffeId.parse("spiffe://example.org/ns/shop/sa/web")
ADMIN = SpiffeId.parse("spiffe://example.org/ns/shop/sa/admin")
SEED = 7

Tamper = Callable[[SvidOrder, x509.CertificateSigningRequest], tuple[SpiffeId, object]]


@pytest.fixture(scope="module")
def pki() -> Pki:
    return make_pki("example.org", now=FIXED_NOW)


@pytest.fixture(scope="module")
def rogue() -> Pki:
    return make_pki("example.org", now=FIXED_NOW)


class FakeCa:
    """Signs every order with ``signer``; ``identity``/``key`` decide what the leaf says."""

    def __init__(self, signer: Pki, clock: ManualClock) -> None:
        self.signer = signer
        self.clock = clock
        self.identity: SpiffeId | None = None  # None: the CSR's own
        self.swap_key = False
        self.refuse: int | None = None
        self.down = False
        self.orders: list[list[str]] = []

    def batch_new_x509_svid(self, orders: Sequence[SvidOrder]) -> list[SvidAnswer]:
        self.orders.append([o.entry_id for o in orders])
        if self.down:
            raise CaUnreachableError("fake CA is down")
        answers = []
        for order in orders:
            if self.refuse is not None:
                answers.append(SvidAnswer(entry_id=order.entry_id, code=self.refuse, message="no"))
                continue
            csr = x509.load_der_x509_csr(order.csr_der)
            uri = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            spiffe_id = self.identity or SpiffeId.parse(
                uri.get_values_for_type(x509.UniformResourceIdentifier)[0]
            )
            public_key = (
                generate_private_key(KeyType.EC_P256).public_key()
                if self.swap_key
                else csr.public_key()
            )
            now = self.clock.now()
            leaf = leaf_builder(
                LeafSpec(
                    spiffe_id=spiffe_id,
                    public_key=public_key,  # type: ignore[arg-type]
                    not_before=now - timedelta(minutes=1),
                    not_after=now + timedelta(hours=1),
                ),
                self.signer.intermediate,
            ).sign(self.signer.intermediate_key, signature_hash_for(self.signer.intermediate_key))
            chain = (
                leaf.public_bytes(Encoding.DER),
                self.signer.intermediate.public_bytes(Encoding.DER),
            )
            answers.append(SvidAnswer(entry_id=order.entry_id, chain_der=chain))
        return answers


def entry(entry_id: str = "web", spiffe_id: SpiffeId = WEB) -> RegistrationEntry:
    return RegistrationEntry(
        entry_id=entry_id,
        spiffe_id=spiffe_id,
        parent_id=AGENT,
        selectors=parse_selectors(["unix:uid:1000"]),
    )


def manager(ca: FakeCa, pki: Pki, clock: ManualClock) -> tuple[EntrySvidManager, Scheduler]:
    scheduler = Scheduler(clock)
    return (
        EntrySvidManager(
            signer=ca,
            roots=lambda: (pki.root,),
            scheduler=scheduler,
            clock=clock,
            policy=SvidPolicy(rotation=RotationPolicy(), backoff=BackoffPolicy()),
            rng=random.Random(SEED),
        ),
        scheduler,
    )


def test_an_svid_for_another_spiffe_id_is_refused_and_never_served(
    pki: Pki, clock: ManualClock
) -> None:
    ca = FakeCa(pki, clock)
    ca.identity = ADMIN  # the CA answers with a certificate for another workload
    svids, scheduler = manager(ca, pki, clock)
    svids.set_entries([entry()])
    assert scheduler.run_due() == 1
    assert svids.current("web") is None
    assert svids.refused == 1
    error = svids.last_error("web")
    assert isinstance(error, IssuedChainError) and str(ADMIN) in error.message
    expected = backoff_delay(0, BackoffPolicy(), random.Random(SEED).uniform(-1.0, 1.0))
    assert scheduler.due_at(EntrySvidManager.TASK) == clock.now() + expected


def test_an_svid_for_another_key_is_refused(pki: Pki, clock: ManualClock) -> None:
    ca = FakeCa(pki, clock)
    ca.swap_key = True
    svids, scheduler = manager(ca, pki, clock)
    svids.set_entries([entry()])
    scheduler.run_due()
    assert svids.current("web") is None
    assert "public key" in str(svids.last_error("web"))


def test_an_svid_from_an_untrusted_ca_is_refused(pki: Pki, rogue: Pki, clock: ManualClock) -> None:
    svids, scheduler = manager(FakeCa(rogue, clock), pki, clock)
    svids.set_entries([entry()])
    scheduler.run_due()
    assert svids.current("web") is None and svids.refused == 1


def test_a_refused_item_backs_off_with_the_status_name(pki: Pki, clock: ManualClock) -> None:
    ca = FakeCa(pki, clock)
    ca.refuse = 7  # PERMISSION_DENIED
    svids, scheduler = manager(ca, pki, clock)
    svids.set_entries([entry()])
    scheduler.run_due()
    error = svids.last_error("web")
    assert isinstance(error, CaRejectedError) and error.code == "PERMISSION_DENIED"
    assert svids.refused == 0  # a refusal is not a bad answer


def test_good_svids_come_in_one_batch_and_renew_at_rotate_at(pki: Pki, clock: ManualClock) -> None:
    ca = FakeCa(pki, clock)
    svids, scheduler = manager(ca, pki, clock)
    svids.set_entries([entry("web", WEB), entry("admin", ADMIN)])
    assert scheduler.run_due() == 1
    assert ca.orders == [["web", "admin"]]
    web, admin = svids.current("web"), svids.current("admin")
    assert web is not None and admin is not None
    draws = random.Random(SEED)
    expected = min(
        rotate_at(s.not_before, s.not_after, 0.5, 0.01, draws.uniform(-1.0, 1.0))
        for s in (web, admin)
    )
    assert scheduler.due_at(EntrySvidManager.TASK) == expected


def test_an_unreachable_ca_keeps_the_current_svid_until_it_expires(
    pki: Pki, clock: ManualClock
) -> None:
    ca = FakeCa(pki, clock)
    svids, scheduler = manager(ca, pki, clock)
    svids.set_entries([entry()])
    scheduler.run_due()
    first = svids.current("web")
    assert first is not None
    ca.down = True
    clock.set(first.not_after - timedelta(minutes=5))
    scheduler.run_due()
    assert svids.current("web") == first
    assert isinstance(svids.last_error("web"), CaUnreachableError)
    clock.set(first.not_after)
    assert svids.current("web") is None  # expired: no longer handed out


def test_a_renamed_entry_stops_serving_the_old_identity_at_once(
    pki: Pki, clock: ManualClock
) -> None:
    ca = FakeCa(pki, clock)
    svids, scheduler = manager(ca, pki, clock)
    svids.set_entries([entry("web", WEB)])
    scheduler.run_due()
    assert svids.current("web") is not None
    svids.set_entries([entry("web", ADMIN)])
    assert svids.current("web") is None
    scheduler.run_due()
    renamed = svids.current("web")
    assert renamed is not None and renamed.material.serial_hex == renamed.serial_hex
