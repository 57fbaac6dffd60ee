"""``citadel ca intermediate-csr`` and ``citadel ca import`` end to end through the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from citadel.identity.clock import ManualClock
from citadel.identity.pem import load_certificates_pem
from citadel.identity.spiffe_id import TrustDomain
from citadel.identity.x509_templates import CaSpec, ca_builder
from tests.unit.ca.lifecycle_kit import OperatorCa, pem
from tests.unit.cli.cli_testkit import assert_fails, assert_ok, initialised, run

TD = TrustDomain("cluster.local")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return initialised(tmp_path / "data")


def _upstream() -> OperatorCa:
    return OperatorCa.root(ManualClock(datetime.now(UTC)), "upstream")


def _sign(upstream: OperatorCa, csr_file: Path) -> x509.Certificate:
    csr = x509.load_pem_x509_csr(csr_file.read_bytes())
    now = datetime.now(UTC)
    spec = CaSpec(
        trust_domain=TD,
        common_name="Upstream-signed",
        public_key=csr.public_key(),  # type: ignore[arg-type]
        not_before=now - timedelta(minutes=5),
        not_after=now + timedelta(days=30),
        path_length=0,
    )
    return ca_builder(spec, upstream.cert).sign(upstream.key, hashes.SHA256())


def test_an_upstream_signed_intermediate_is_imported_and_activated(
    data: Path, tmp_path: Path
) -> None:
    csr_file = tmp_path / "intermediate.csr"
    text = assert_ok(run(data, "ca", "intermediate-csr", "--out", str(csr_file)))
    assert "pending as upstream-" in text
    upstream = _upstream()
    (tmp_path / "cert.pem").write_bytes(pem(_sign(upstream, csr_file)))
    (tmp_path / "chain.pem").write_bytes(pem(upstream.cert))
    text = assert_ok(
        run(
            data,
            "ca",
            "import",
            "--cert",
            str(tmp_path / "cert.pem"),
            "--chain",
            str(tmp_path / "chain.pem"),
        )
    )
    assert "under the new root" in text
    assert len(load_certificates_pem(assert_ok(run(data, "bundle", "show")))) == 2
    assert_ok(run(data, "ca", "rotate", "activate", "--root", "--propagation-delay", "0s"))
    status = json.loads(assert_ok(run(data, "ca", "rotate", "status", "--output", "json")))
    current = status["root"]["authorities"][0]
    assert current["role"] == "current" and current["held_by_citadel"] is False


def test_importing_a_certificate_for_another_key_fails_and_changes_nothing(
    data: Path, tmp_path: Path
) -> None:
    assert_ok(run(data, "ca", "intermediate-csr", "--out", str(tmp_path / "x.csr")))
    upstream = _upstream()
    now = ManualClock(datetime.now(UTC))
    (tmp_path / "cert.pem").write_bytes(pem(upstream.issue_ca(now, "other", trust_domain=TD).cert))
    (tmp_path / "chain.pem").write_bytes(pem(upstream.cert))
    before = assert_ok(run(data, "ca", "show", "--output", "json"))
    assert_fails(
        run(
            data,
            "ca",
            "import",
            "--cert",
            str(tmp_path / "cert.pem"),
            "--chain",
            str(tmp_path / "chain.pem"),
        ),
        1,
        "matches none of the 1 pending key",
    )
    assert assert_ok(run(data, "ca", "show", "--output", "json")) == before


def test_the_csr_is_never_written_over_an_existing_file(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "exists.csr"
    out.write_text("keep me")
    assert_fails(run(data, "ca", "intermediate-csr", "--out", str(out)), 1, "refusing to overwrite")
    assert out.read_text() == "keep me"


def test_importing_a_missing_file_fails_cleanly(data: Path, tmp_path: Path) -> None:
    assert_fails(
        run(
            data,
            "ca",
            "import",
            "--cert",
            str(tmp_path / "nope.pem"),
            "--chain",
            str(tmp_path / "nope2.pem"),
        ),
        1,
        "cannot be read",
    )
