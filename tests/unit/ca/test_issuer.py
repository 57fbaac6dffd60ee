from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from citadel.ca.errors import CaNotReadyError, TtlError
from citadel.ca.issuer import Issuer, SignParams
from citadel.identity.chain import verify_svid_chain
from citadel.identity.clock import ManualClock
from citadel.identity.errors import InvalidKeyError, InvalidSpiffeIdError
from citadel.identity.keys import KeyType, PublicKey, generate_private_key
from citadel.identity.pem import load_certificates_pem, serial_hex
from citadel.identity.spiffe_id import SpiffeId
from citadel.identity.x509_svid import validate_x509_svid_leaf
from citadel.store.errors import StoreUnavailableError
from citadel.store.repository import Repository
from tests.unit.ca.ca_testkit import (
    TRUST_DOMAIN,
    RecordingRecorder,
    assert_openssl_sees_x509_svid,
    make_authorities,
    make_issuer,
    openssl_verify,
)

WORKLOAD = TRUST_DOMAIN.spiffe_id("/ns/default/sa/web")
SKEW = timedelta(minutes=2)


def _public_key(key_type: KeyType = KeyType.EC_P256) -> PublicKey:
    return generate_private_key(key_type).public_key()


def _params(ttl: timedelta | None = None, spiffe_id: SpiffeId = WORKLOAD) -> SignParams:
    return SignParams(spiffe_id=spiffe_id, ttl=ttl, requester="test:unit")


@pytest.fixture
def recorder() -> RecordingRecorder:
    return RecordingRecorder()


@pytest.fixture
def issuer(clock: ManualClock, recorder: RecordingRecorder) -> Iterator[Issuer]:
    issuer = make_issuer(clock, recorder)
    yield issuer
    issuer.close()


# --- TTL rules ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "lifetime"),
    [
        (None, timedelta(hours=24)),
        (timedelta(0), timedelta(hours=24)),
        (timedelta(hours=1), timedelta(hours=1)),
        (timedelta(days=90), timedelta(days=90)),
    ],
    ids=["none-gives-24h", "zero-gives-24h", "one-hour", "exactly-90-days"],
)
def test_issued_lifetime_follows_the_ttl_rules(
    issuer: Issuer, clock: ManualClock, tmp_path: Path, ttl: timedelta | None, lifetime: timedelta
) -> None:
    chain = issuer.issue(_public_key(), _params(ttl))
    assert chain.leaf.not_valid_after_utc == clock.now() + lifetime
    openssl_verify(chain, clock.now(), tmp_path)


@pytest.mark.parametrize(
    ("ttl", "message"),
    [
        (timedelta(seconds=-1), "negative"),
        (timedelta(days=90, seconds=1), "exceeds the maximum"),
        (timedelta(days=3650), "exceeds the maximum"),
    ],
    ids=["negative", "one-second-over-max", "ten-years"],
)
def test_bad_ttls_are_refused_and_nothing_is_recorded(
    issuer: Issuer, recorder: RecordingRecorder, ttl: timedelta, message: str
) -> None:
    with pytest.raises(TtlError, match=message):
        issuer.issue(_public_key(), _params(ttl))
    assert recorder.records == []


def test_not_after_is_clamped_to_the_signers_not_after(
    clock: ManualClock, tmp_path: Path
) -> None:
    signer, root = make_authorities(clock, intermediate_ttl=timedelta(hours=5))
    issuer = make_issuer(clock, signer=signer, root=root)
    try:
        chain = issuer.issue(_public_key(), _params(timedelta(days=30)))
    finally:
        issuer.close()
    assert chain.leaf.not_valid_after_utc == signer.not_after
    openssl_verify(chain, clock.now(), tmp_path)


def test_max_ttl_is_configurable(clock: ManualClock) -> None:
    issuer = make_issuer(clock, max_ttl=timedelta(hours=2), default_ttl=timedelta(hours=1))
    try:
        assert issuer.max_ttl == timedelta(hours=2)
        with pytest.raises(TtlError):
            issuer.issue(_public_key(), _params(timedelta(hours=3)))
        chain = issuer.issue(_public_key(), _params(None))
    finally:
        issuer.close()
    assert chain.not_after - chain.leaf.not_valid_before_utc == timedelta(hours=1, minutes=2)


def test_not_before_is_backdated_by_the_clock_skew(
    issuer: Issuer, clock: ManualClock, tmp_path: Path
) -> None:
    clock.advance(timedelta(hours=3))
    chain = issuer.issue(_public_key(), _params())
    assert chain.leaf.not_valid_before_utc == clock.now() - SKEW
    # a peer whose clock runs 1 minute behind accepts it
    openssl_verify(chain, clock.now() - timedelta(minutes=1), tmp_path)


def test_an_expired_signer_issues_nothing(
    issuer: Issuer, clock: ManualClock, recorder: RecordingRecorder
) -> None:
    clock.advance(timedelta(days=366))
    with pytest.raises(CaNotReadyError, match="expired"):
        issuer.issue(_public_key(), _params())
    assert recorder.records == []


# --- what is issued ----------------------------------------------------------------------


def test_chain_is_leaf_intermediate_root_and_verifies(
    issuer: Issuer, clock: ManualClock, tmp_path: Path
) -> None:
    chain = issuer.issue(_public_key(), _params())
    assert chain.intermediates == (issuer.signer.cert,)
    assert len(chain.roots) == 1
    assert verify_svid_chain(
        chain.leaf, chain.intermediates, chain.roots, at=clock.now(), trust_domain=TRUST_DOMAIN
    ) == WORKLOAD
    pems = chain.cert_chain_pem()
    assert len(pems) == 3
    assert [load_certificates_pem(p)[0] for p in pems] == [
        chain.leaf, chain.intermediates[0], chain.roots[0]
    ]
    openssl_verify(chain, clock.now(), tmp_path)


@pytest.mark.parametrize(
    "key_type", [KeyType.EC_P256, KeyType.EC_P384, KeyType.RSA_2048], ids=str
)
def test_leaf_follows_the_x509_svid_profile_as_openssl_reads_it(
    issuer: Issuer, clock: ManualClock, tmp_path: Path, key_type: KeyType
) -> None:
    chain = issuer.issue(_public_key(key_type), _params())
    assert validate_x509_svid_leaf(chain.leaf) == WORKLOAD
    assert len(chain.leaf.subject) == 0
    assert_openssl_sees_x509_svid(chain.leaf, str(WORKLOAD))
    openssl_verify(chain, clock.now(), tmp_path)


def test_identity_comes_from_the_params(
    issuer: Issuer, clock: ManualClock, tmp_path: Path
) -> None:
    other = TRUST_DOMAIN.spiffe_id("/ns/billing/sa/api")
    chain = issuer.issue(_public_key(), _params(spiffe_id=other))
    assert chain.spiffe_id == other
    assert validate_x509_svid_leaf(chain.leaf) == other
    openssl_verify(chain, clock.now(), tmp_path)


def test_dns_names_are_added_when_asked(
    issuer: Issuer, clock: ManualClock, tmp_path: Path
) -> None:
    params = SignParams(
        spiffe_id=WORKLOAD, requester="test", dns_names=("web.example.org",)
    )
    chain = issuer.issue(_public_key(), params)
    san = chain.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["web.example.org"]
    openssl_verify(chain, clock.now(), tmp_path)


def test_serials_are_random_positive_128_bit_and_unique(
    issuer: Issuer, clock: ManualClock, tmp_path: Path
) -> None:
    chains = [issuer.issue(_public_key(), _params()) for _ in range(40)]
    serials = [c.leaf.serial_number for c in chains]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**128 for s in serials)
    # 40 random 128-bit values all below 2**120 would happen with probability 2**-320
    assert max(s.bit_length() for s in serials) > 120
    assert all(c.serial_hex == serial_hex(c.leaf) for c in chains)
    for chain in chains[:3]:
        openssl_verify(chain, clock.now(), tmp_path)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spiffe_id", "message"),
    [
        ("spiffe://other.org/ns/a/sa/b", "not in trust domain"),
        ("spiffe://example.org", "must have a path"),
    ],
    ids=["foreign-trust-domain", "trust-domain-id"],
)
def test_identities_the_ca_cannot_certify_are_refused(
    issuer: Issuer, recorder: RecordingRecorder, spiffe_id: str, message: str
) -> None:
    with pytest.raises(InvalidSpiffeIdError, match=message):
        issuer.issue(_public_key(), _params(spiffe_id=SpiffeId.parse(spiffe_id)))
    assert recorder.records == []


def test_a_weak_public_key_is_refused(issuer: Issuer) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()  # noqa: S505
    with pytest.raises(InvalidKeyError, match="too weak"):
        issuer.issue(weak, _params())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"requester": ""},
        {"metadata": {f"k{i}": "v" for i in range(33)}},
        {"metadata": {"k": "v" * 2000}},
        {"requester": "mtls:\x00evil"},
        {"requester": "bad \ud800 surrogate"},
        {"requester": "r" * 1025},
        {"metadata": {"k": "nul\x00"}},
    ],
    ids=[
        "empty-requester",
        "too-many-metadata-entries",
        "oversized-metadata",
        "nul-in-requester",
        "surrogate-in-requester",
        "oversized-requester",
        "nul-in-metadata",
    ],
)
def test_malformed_sign_params_are_misuse(kwargs: dict[str, object]) -> None:
    fields: dict[str, object] = {"spiffe_id": WORKLOAD, "requester": "test", **kwargs}
    with pytest.raises(ValueError):
        SignParams(**fields)  # type: ignore[arg-type]


# --- the audit record --------------------------------------------------------------------


def test_the_issuance_record_is_written_before_issue_returns(
    issuer: Issuer, recorder: RecordingRecorder, clock: ManualClock
) -> None:
    params = SignParams(spiffe_id=WORKLOAD, requester="mtls:x", metadata={"cluster": "c1"})
    chain = issuer.issue(_public_key(), params)
    (record,) = recorder.records
    assert record.serial_hex == chain.serial_hex
    assert record.spiffe_id == str(WORKLOAD)
    assert record.requester == "mtls:x"
    assert dict(record.metadata) == {"cluster": "c1"}
    assert record.issued_at == clock.now()
    assert record.not_after == chain.not_after
    assert record.issuer_fingerprint == issuer.signer.fingerprint
    assert load_certificates_pem(record.certificate_pem) == [chain.leaf]


def test_a_failed_commit_returns_no_certificate(clock: ManualClock) -> None:
    recorder = RecordingRecorder(fail=True)
    issuer = make_issuer(clock, recorder)
    try:
        with pytest.raises(StoreUnavailableError, match="no certificate was issued"):
            issuer.issue(_public_key(), _params())
    finally:
        issuer.close()
    assert recorder.calls == 1


def test_every_waiter_of_a_failed_batch_gets_an_error(clock: ManualClock) -> None:
    hold = threading.Event()
    recorder = RecordingRecorder(fail=True, hold=hold)
    issuer = make_issuer(clock, recorder)
    outcomes: list[object] = []
    lock = threading.Lock()

    def call() -> None:
        try:
            result: object = issuer.issue(_public_key(), _params())
        except StoreUnavailableError as exc:
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    hold.set()
    for thread in threads:
        thread.join(20)
    issuer.close()
    assert len(outcomes) == 8
    assert all(isinstance(o, StoreUnavailableError) for o in outcomes)


def test_a_closed_issuer_refuses_to_sign(issuer: Issuer) -> None:
    issuer.close()
    with pytest.raises(CaNotReadyError, match="closed"):
        issuer.issue(_public_key(), _params())


def test_concurrent_issues_each_get_a_committed_audit_row(
    clock: ManualClock, tmp_path: Path
) -> None:
    repository = Repository.open(f"sqlite:///{tmp_path / 'citadel.db'}")
    issuer = make_issuer(clock, repository)
    chains = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def call(index: int) -> None:
        try:
            chain = issuer.issue(
                _public_key(), _params(spiffe_id=TRUST_DOMAIN.spiffe_id(f"/w/{index}"))
            )
            # the row is committed by the time issue() returns
            assert repository.get_certificate(chain.serial_hex).spiffe_id == str(chain.spiffe_id)
            with lock:
                chains.append(chain)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    try:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        assert len(chains) == 24
        assert len({c.serial_hex for c in chains}) == 24
        stored = repository.list_certificates(limit=100)
        assert sorted(r.serial_hex for r in stored) == sorted(c.serial_hex for c in chains)
        assert len(repository.list_audit(limit=100)) == 24
        assert repository.verify_audit_chain().ok
    finally:
        issuer.close()
        repository.close()
    for chain in chains:
        openssl_verify(chain, clock.now(), tmp_path / "openssl")


def test_trust_bundle_holds_the_roots(issuer: Issuer) -> None:
    bundle = issuer.trust_bundle()
    assert bundle.trust_domain == TRUST_DOMAIN
    assert bundle.x509_authorities == (issuer.signer.root,)
