"""Chain verification to a trust bundle, at an injected time.

The good chains are also handed to the openssl CLI as an independent verifier.
"""

from __future__ import annotations

import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from citadel.identity.chain import verify_svid_chain
from citadel.identity.clock import ManualClock
from citadel.identity.errors import ChainVerificationError
from citadel.identity.keys import generate_private_key
from citadel.identity.spiffe_id import SpiffeId
from citadel.identity.x509_templates import LeafSpec, leaf_builder
from tests.fixtures.pki import Pki
from tests.fixtures.x509_defects import LeafShape, build_leaf
from tests.peers import require_binary

WEB = SpiffeId.parse("spiffe://example.org/ns/default/sa/web")


def _reject(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    roots: list[x509.Certificate],
    clock: ManualClock,
    **kwargs: object,
) -> str:
    with pytest.raises(ChainVerificationError) as caught:
        verify_svid_chain(leaf, intermediates, roots, at=clock.now(), **kwargs)  # type: ignore[arg-type]
    assert caught.value.kind == "chain_verification_failed"
    return caught.value.message


def test_good_chain_verifies_and_yields_the_leaf_spiffe_id(
    any_pki: Pki, clock: ManualClock
) -> None:
    leaf, _ = any_pki.issue_leaf()
    spiffe_id = verify_svid_chain(
        leaf,
        [any_pki.intermediate],
        [any_pki.root],
        at=clock.now(),
        trust_domain=any_pki.trust_domain,
    )
    assert spiffe_id == WEB


def test_good_chain_verifies_with_an_extra_unrelated_root_in_the_bundle(
    pki: Pki, other_pki: Pki, clock: ManualClock
) -> None:
    leaf, _ = pki.issue_leaf()
    roots = [other_pki.root, pki.root]  # a bundle during root rotation holds both
    assert verify_svid_chain(leaf, [pki.intermediate], roots, at=clock.now()) == WEB


def test_leaf_signed_directly_by_the_root_verifies(pki: Pki, clock: ManualClock) -> None:
    key = generate_private_key()
    spec = LeafSpec(
        spiffe_id=WEB,
        public_key=key.public_key(),
        not_before=clock.now() - timedelta(minutes=1),
        not_after=clock.now() + timedelta(hours=1),
    )
    leaf = leaf_builder(spec, pki.root).sign(pki.root_key, hashes.SHA256())
    assert verify_svid_chain(leaf, [], [pki.root], at=clock.now()) == WEB


def test_leaf_is_valid_until_its_not_after_and_expired_one_second_later(
    pki: Pki, clock: ManualClock
) -> None:
    leaf, _ = pki.issue_leaf(not_after=clock.now() + timedelta(hours=1))
    clock.advance(timedelta(hours=1))
    assert verify_svid_chain(leaf, [pki.intermediate], [pki.root], at=clock.now()) == WEB
    clock.advance(timedelta(seconds=1))
    message = _reject(leaf, [pki.intermediate], [pki.root], clock)
    assert message.startswith("chain does not verify: ")
    assert "not valid at validation time" in message


def test_leaf_that_is_not_yet_valid_is_rejected(pki: Pki, clock: ManualClock) -> None:
    leaf, _ = pki.issue_leaf(not_before=clock.now() + timedelta(minutes=5))
    message = _reject(leaf, [pki.intermediate], [pki.root], clock)
    assert "not valid at validation time" in message


def test_chain_with_an_expired_intermediate_is_rejected(pki: Pki, clock: ManualClock) -> None:
    leaf, _ = pki.issue_leaf(not_after=clock.now() + timedelta(days=400))
    clock.advance(timedelta(days=366))  # past the intermediate's one-year life
    message = _reject(leaf, [pki.intermediate], [pki.root], clock)
    assert "not valid at validation time" in message


def test_chain_to_the_wrong_root_is_rejected(pki: Pki, other_pki: Pki, clock: ManualClock) -> None:
    leaf, _ = pki.issue_leaf()
    message = _reject(leaf, [pki.intermediate], [other_pki.root], clock)
    assert message.startswith("chain does not verify: ")


def test_chain_missing_its_intermediate_is_rejected(pki: Pki, clock: ManualClock) -> None:
    leaf, _ = pki.issue_leaf()
    assert _reject(leaf, [], [pki.root], clock).startswith("chain does not verify: ")


def test_untrusted_root_offered_as_an_intermediate_does_not_anchor_the_chain(
    pki: Pki, other_pki: Pki, clock: ManualClock
) -> None:
    leaf, _ = pki.issue_leaf()
    message = _reject(leaf, [pki.intermediate, pki.root], [other_pki.root], clock)
    assert message.startswith("chain does not verify: ")


def test_leaf_forged_under_the_intermediate_name_is_rejected(pki: Pki, clock: ManualClock) -> None:
    """Same issuer name and AKI, but signed with a key that is not the intermediate's."""
    key = generate_private_key()
    spec = LeafSpec(
        spiffe_id=WEB,
        public_key=key.public_key(),
        not_before=clock.now() - timedelta(minutes=1),
        not_after=clock.now() + timedelta(hours=1),
    )
    forged = leaf_builder(spec, pki.intermediate).sign(generate_private_key(), hashes.SHA256())
    assert _reject(forged, [pki.intermediate], [pki.root], clock).startswith(
        "chain does not verify: "
    )


def test_leaf_of_a_foreign_trust_domain_is_rejected_when_a_trust_domain_is_required(
    pki: Pki, other_pki: Pki, clock: ManualClock
) -> None:
    leaf, _ = other_pki.issue_leaf()
    # the chain itself is sound: without a trust domain it verifies
    assert (
        str(verify_svid_chain(leaf, [other_pki.intermediate], [other_pki.root], at=clock.now()))
        == "spiffe://other.org/ns/default/sa/web"
    )
    message = _reject(
        leaf, [other_pki.intermediate], [other_pki.root], clock, trust_domain=pki.trust_domain
    )
    assert message == "leaf belongs to trust domain other.org, expected example.org"


def test_empty_trust_bundle_is_rejected(pki: Pki, clock: ManualClock) -> None:
    leaf, _ = pki.issue_leaf()
    assert _reject(leaf, [pki.intermediate], [], clock) == "trust bundle is empty"


def test_leaf_that_is_not_an_x509_svid_is_rejected_even_if_the_chain_is_sound(
    pki: Pki, clock: ManualClock
) -> None:
    leaf = build_leaf(pki, LeafShape(uris=("spiffe://example.org",)))
    message = _reject(leaf, [pki.intermediate], [pki.root], clock)
    assert message == "leaf is not an X509-SVID: leaf SPIFFE ID must have a path"


def test_naive_verification_time_is_taken_as_utc(pki: Pki, clock: ManualClock) -> None:
    leaf, _ = pki.issue_leaf()
    naive = clock.now().replace(tzinfo=None)
    assert verify_svid_chain(leaf, [pki.intermediate], [pki.root], at=naive) == WEB


# --- the openssl CLI as an independent verifier ------------------------------------------


def _write(path: Path, cert: x509.Certificate) -> str:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def _openssl_verify(
    openssl: str, pki: Pki, leaf: x509.Certificate, tmp_path: Path, at: int, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            openssl,
            "verify",
            "-attime",
            str(at),
            *extra,
            "-CAfile",
            _write(tmp_path / "root.pem", pki.root),
            "-untrusted",
            _write(tmp_path / "int.pem", pki.intermediate),
            _write(tmp_path / "leaf.pem", leaf),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param((), id="default"),
        pytest.param(("-x509_strict",), id="x509-strict"),
        pytest.param(("-purpose", "sslserver"), id="purpose-sslserver"),
        pytest.param(("-purpose", "sslclient"), id="purpose-sslclient"),
    ],
)
def test_openssl_verifies_every_good_chain(
    extra: tuple[str, ...], any_pki: Pki, clock: ManualClock, tmp_path: Path
) -> None:
    openssl = require_binary("openssl", hint="apt-get install openssl")
    at = int(clock.now().timestamp())
    for dns_names in ((), ("web.example.org",)):
        leaf, _ = any_pki.issue_leaf(dns_names=dns_names)
        chain_ok = verify_svid_chain(leaf, [any_pki.intermediate], [any_pki.root], at=clock.now())
        assert chain_ok == WEB
        result = _openssl_verify(openssl, any_pki, leaf, tmp_path, at, *extra)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.strip().endswith(": OK")


def test_openssl_rejects_the_same_chain_after_the_leaf_expires(
    pki: Pki, clock: ManualClock, tmp_path: Path
) -> None:
    """A control: the openssl check above can fail, and agrees with ours on expiry."""
    openssl = require_binary("openssl", hint="apt-get install openssl")
    leaf, _ = pki.issue_leaf()
    clock.advance(timedelta(days=2))
    _reject(leaf, [pki.intermediate], [pki.root], clock)
    result = _openssl_verify(openssl, pki, leaf, tmp_path, int(clock.now().timestamp()))
    assert result.returncode != 0
    assert "certificate has expired" in result.stdout + result.stderr


def test_openssl_shows_the_x509_svid_extensions_of_a_leaf(any_pki: Pki, tmp_path: Path) -> None:
    openssl = require_binary("openssl", hint="apt-get install openssl")
    leaf, _ = any_pki.issue_leaf()
    result = subprocess.run(
        [openssl, "x509", "-in", _write(tmp_path / "leaf.pem", leaf), "-text", "-noout"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    lines = [line.strip() for line in result.stdout.splitlines()]

    def after(header: str) -> str:
        return lines[lines.index(header) + 1]

    assert after("X509v3 Subject Alternative Name: critical") == f"URI:{WEB}"
    usage = after("X509v3 Key Usage: critical")
    assert usage.startswith("Digital Signature")
    assert ("Key Encipherment" in usage) == any_pki.key_type.is_rsa
    assert "Certificate Sign" not in usage and "CRL Sign" not in usage
    assert (
        after("X509v3 Extended Key Usage:")
        == "TLS Web Server Authentication, TLS Web Client Authentication"
    )
    assert after("X509v3 Basic Constraints: critical") == "CA:FALSE"
    assert "Subject: " in lines or "Subject:" in lines  # empty subject
