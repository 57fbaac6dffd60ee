"""``citadel serve --plugin-ca-dir``: a fresh CA starts from the plug-in CA (no self-signed
root), and a changed directory is installed by the running server (its watcher), with no
restart."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509

from citadel.identity.clock import ManualClock
from citadel.identity.pem import load_certificates_pem
from tests.peers.citadel_server import CitadelServer, start_citadel_server
from tests.unit.ca.lifecycle_kit import OperatorCa, write_plugin_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(120)]

WORKLOAD = "spiffe://example.org/ns/default/sa/web"


@pytest.fixture
def workdir() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="plug-", dir="/tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _issuer_of_minted(server: CitadelServer, out: Path) -> x509.Name:
    server.mint(WORKLOAD, out)
    return load_certificates_pem((out / "cert-chain.pem").read_bytes())[0].issuer


def test_serve_starts_from_the_plugin_ca_and_installs_a_changed_directory(
    workdir: Path,
) -> None:
    clock = ManualClock(datetime.now(UTC))
    root = OperatorCa.root(clock, "plug")
    first = root.issue_ca(clock, "first")
    plugin = write_plugin_dir(workdir / "cacerts", first, (root.cert,), (root.cert,))
    server = start_citadel_server(workdir / "ca", extra_args=("--plugin-ca-dir", str(plugin)))
    try:
        assert load_certificates_pem(server.root_bundle_pem()) == [root.cert]
        assert _issuer_of_minted(server, workdir / "m1") == first.cert.subject

        second = root.issue_ca(clock, "second")
        staging = write_plugin_dir(workdir / "staging", second, (root.cert,), (root.cert,))
        for name in ("ca-key.pem", "ca-cert.pem", "cert-chain.pem", "root-cert.pem"):
            (staging / name).replace(plugin / name)
        deadline = time.monotonic() + 30  # quiet period (2 s), install, authority watch
        attempt = 0
        while _issuer_of_minted(server, workdir / f"m2-{attempt}") != second.cert.subject:
            attempt += 1
            if time.monotonic() > deadline:
                raise AssertionError(server.log_tail())
            time.sleep(0.5)
        assert server.running  # installed by the running server, no restart
    finally:
        server.stop()
