"""The APIs' link to the CA lifecycle: a store lookup until the lifecycle's index is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from cryptography import x509

from citadel.identity.pem import serial_hex
from citadel.server.lifecycle_link import LifecycleLink
from citadel.store.errors import NotFoundError
from tests.conftest import FIXED_NOW
from tests.fakes.fake_ca import FakePki, make_fake_pki


@dataclass
class Record:
    revoked_at: datetime | None


@dataclass
class Store:
    revoked: set[str] = field(default_factory=set)
    lookups: int = 0

    def get_certificate(self, serial: str) -> object:
        self.lookups += 1
        if serial == "unknown":
            raise NotFoundError("no")
        return Record(FIXED_NOW if serial in self.revoked else None)


@dataclass
class Lifecycle:
    loaded: datetime | None = None
    revoked: set[str] = field(default_factory=set)
    acks: list[tuple[str, str]] = field(default_factory=list)

    def is_certificate_revoked(self, cert: x509.Certificate) -> bool:
        return serial_hex(cert) in self.revoked

    def current_crls(self) -> list[bytes]:
        return [b"crl"]

    def record_bundle_ack(self, agent_id: str, version: str) -> None:
        self.acks.append((agent_id, version))

    @property
    def revocations_loaded_at(self) -> datetime | None:
        return self.loaded


@pytest.fixture(scope="module")
def cert() -> x509.Certificate:
    pki: FakePki = make_fake_pki(around=[FIXED_NOW, datetime.now(UTC)])
    return pki.intermediate


def test_before_a_lifecycle_is_attached_the_store_decides(cert: x509.Certificate) -> None:
    store = Store(revoked={serial_hex(cert)})
    link = LifecycleLink(store)
    assert link.is_revoked(cert)
    assert store.lookups == 1
    assert list(link.crls()) == []
    link.record_bundle_ack("spiffe://td/a", "abcd")  # nowhere to record: ignored


def test_until_the_index_is_loaded_the_store_still_decides(cert: x509.Certificate) -> None:
    store = Store(revoked={serial_hex(cert)})
    link = LifecycleLink(store)
    lifecycle = Lifecycle(loaded=None)
    link.attach(lifecycle)
    assert link.is_revoked(cert)  # a revoked certificate is never let through for lack of an index
    assert store.lookups == 1


def test_a_loaded_index_answers_without_the_store(cert: x509.Certificate) -> None:
    store = Store()
    link = LifecycleLink(store)
    lifecycle = Lifecycle(loaded=FIXED_NOW, revoked={serial_hex(cert)})
    link.attach(lifecycle)
    assert link.is_revoked(cert)
    assert store.lookups == 0
    assert list(link.crls()) == [b"crl"]
    link.record_bundle_ack("spiffe://td/a", "abcd")
    assert lifecycle.acks == [("spiffe://td/a", "abcd")]
