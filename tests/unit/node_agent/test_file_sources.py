from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from citadel.identity.clock import ManualClock
from citadel.identity.keys import generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.spiffe_id import SpiffeId
from node_agent.errors import UnknownResourceError
from node_agent.file_sources import FileSecretSources
from node_agent.file_watch import DirectoryWatcher
from node_agent.metrics import AgentMetrics
from node_agent.resource_names import parse_resource_name
from node_agent.scheduler import Scheduler
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import SecretValidator
from node_agent.secrets import TlsCertificateSecret, TrustBundleSecret
from tests.fakes.fake_ca import FakePki

WAIT_S = 5.0


@dataclass
class Rig:
    sources: FileSecretSources
    cache: SecretCache
    scheduler: Scheduler
    clock: ManualClock
    metrics: AgentMetrics
    directory: Path
    pki: FakePki

    def write_pair(self, *, key_pem: bytes | None = None) -> str:
        chain, key, leaf = self.pki.leaf_files(
            SpiffeId.parse("spiffe://example.org/ns/default/sa/files"),
            not_before=self.clock.now() - timedelta(minutes=1),
            not_after=self.clock.now() + timedelta(hours=1),
        )
        (self.directory / "cert.pem").write_bytes(chain)
        (self.directory / "key.pem").write_bytes(key_pem if key_pem is not None else key)
        return format(leaf.serial_number, "x")

    def settle(self) -> int:
        """Wait for the watcher to schedule the debounced reload, then run it."""
        deadline = time.monotonic() + WAIT_S
        while self.scheduler.next_due() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)  # let the burst of events finish
        self.clock.advance(timedelta(seconds=1))
        return self.scheduler.run_due()


@pytest.fixture
def rig(tmp_path: Path, clock: ManualClock, pki: FakePki) -> Iterator[Rig]:
    directory = tmp_path / "certs"
    directory.mkdir()
    cache = SecretCache(clock)
    scheduler = Scheduler(clock)
    metrics = AgentMetrics()
    watcher = DirectoryWatcher(scheduler, clock, debounce=timedelta(milliseconds=200))
    watcher.start()
    sources = FileSecretSources(
        cache=cache,
        clock=clock,
        watcher=watcher,
        validator=SecretValidator(),
        metrics=metrics,
        allowed_dirs=(tmp_path,),
    )
    try:
        yield Rig(sources, cache, scheduler, clock, metrics, directory, pki)
    finally:
        watcher.stop()


def _cert_name(rig: Rig) -> str:
    return f"file-cert:{rig.directory / 'cert.pem'}~{rig.directory / 'key.pem'}"


def test_file_certificate_is_published_on_first_request(rig: Rig) -> None:
    serial = rig.write_pair()
    name = _cert_name(rig)
    rig.sources.ensure(parse_resource_name(name))  # type: ignore[arg-type]
    entry = rig.cache.get(name)
    assert entry is not None and isinstance(entry.secret, TlsCertificateSecret)
    assert entry.secret.serial_hex == serial


def test_replacing_the_files_republishes_the_secret(rig: Rig) -> None:
    rig.write_pair()
    name = _cert_name(rig)
    rig.sources.ensure(parse_resource_name(name))  # type: ignore[arg-type]
    seen: list[str] = []
    rig.cache.subscribe(name, seen.append)
    serial = rig.write_pair()
    assert rig.settle() >= 1
    entry = rig.cache.get(name)
    assert entry is not None and isinstance(entry.secret, TlsCertificateSecret)
    assert entry.secret.serial_hex == serial
    assert seen == [name]


def test_mismatched_replacement_keeps_the_previous_secret(rig: Rig) -> None:
    good_serial = rig.write_pair()
    name = _cert_name(rig)
    rig.sources.ensure(parse_resource_name(name))  # type: ignore[arg-type]
    rig.write_pair(key_pem=private_key_to_pkcs8_pem(generate_private_key()))
    rig.settle()
    entry = rig.cache.get(name)
    assert entry is not None and isinstance(entry.secret, TlsCertificateSecret)
    assert entry.secret.serial_hex == good_serial
    assert (
        rig.metrics.registry.get_sample_value(
            "citadel_agent_secrets_rejected_total", {"source": "file"}
        )
        == 1
    )


def test_file_root_is_served_as_a_trust_bundle(rig: Rig) -> None:
    (rig.directory / "roots.pem").write_bytes(rig.pki.root_pem)
    name = f"file-root:{rig.directory / 'roots.pem'}"
    rig.sources.ensure(parse_resource_name(name))  # type: ignore[arg-type]
    entry = rig.cache.get(name)
    assert entry is not None and isinstance(entry.secret, TrustBundleSecret)


def test_missing_file_publishes_nothing_until_it_appears(rig: Rig) -> None:
    name = _cert_name(rig)
    rig.sources.ensure(parse_resource_name(name))  # type: ignore[arg-type]
    assert rig.cache.get(name) is None
    rig.write_pair()
    rig.settle()
    assert rig.cache.get(name) is not None


def test_file_outside_the_allowed_directories_is_refused(rig: Rig, tmp_path: Path) -> None:
    resource = parse_resource_name("file-root:/etc/ssl/certs/ca-certificates.crt")
    with pytest.raises(UnknownResourceError, match="outside the allowed directories"):
        rig.sources.ensure(resource)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("file-cert:/a/cert.pem", "file-cert:<cert path>~<key path>"),
        ("file-cert:relative.pem~/k.pem", "absolute paths"),
        ("file-root:/etc/../etc/passwd", "must not contain '..'"),
        ("file-root:", "empty path"),
        ("spiffe://example.org/x", "unknown SDS resource"),
        ("file-root:/" + "a" * 5000, "too long"),
        ("file-root:/etc/\x00passwd", "NUL byte"),
    ],
    ids=["no-key-part", "relative", "dot-dot", "empty", "unsupported-name", "oversized", "nul"],
)
def test_malformed_resource_names_are_unknown(name: str, message: str) -> None:
    with pytest.raises(UnknownResourceError, match=message):
        parse_resource_name(name)
