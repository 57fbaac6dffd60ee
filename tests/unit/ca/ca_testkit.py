"""Helpers for the CA tests: authorities in a memory key manager, recorders, openssl checks."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.authority import Authority, new_intermediate_certificate, new_root_certificate
from citadel.ca.issued_chain import IssuedChain
from citadel.ca.issuer import Issuer
from citadel.ca.keymanager import MemoryKeyManager
from citadel.ca.keymanager.base import KeyManager
from citadel.identity.clock import Clock
from citadel.identity.keys import KeyType
from citadel.identity.spiffe_id import TrustDomain
from citadel.store.errors import StoreUnavailableError
from citadel.store.records import IssuanceInput
from tests.peers import require_binary

TRUST_DOMAIN = TrustDomain("example.org")
SKEW = timedelta(minutes=2)
OPENSSL_HINT = "install the Debian 'openssl' package"


def make_authorities(
    clock: Clock,
    *,
    key_manager: KeyManager | None = None,
    trust_domain: TrustDomain = TRUST_DOMAIN,
    key_type: KeyType = KeyType.EC_P256,
    root_ttl: timedelta = timedelta(days=3650),
    intermediate_ttl: timedelta = timedelta(days=365),
) -> tuple[Authority, Authority]:
    """(signing intermediate, root), keys in ``key_manager`` (a fresh memory one by default)."""
    manager = key_manager if key_manager is not None else MemoryKeyManager()
    now = clock.now()
    root_key = manager.generate_key("root", key_type)
    root_cert = new_root_certificate(
        root_key, trust_domain=trust_domain, now=now, ttl=root_ttl, skew=SKEW
    )
    root = Authority(root_cert, root_key)
    key = manager.generate_key("intermediate", key_type)
    cert = new_intermediate_certificate(
        key, root, trust_domain=trust_domain, now=now, ttl=intermediate_ttl, skew=SKEW
    )
    return Authority(cert, key, (root_cert,)), root


class RecordingRecorder:
    """An issuance recorder that keeps every committed batch; can be told to fail."""

    def __init__(self, *, fail: bool = False, hold: threading.Event | None = None) -> None:
        self.batches: list[list[IssuanceInput]] = []
        self.fail = fail
        self.hold = hold
        self.calls = 0
        self._lock = threading.Lock()

    def record_issuances(self, batch: Sequence[IssuanceInput]) -> object:
        if self.hold is not None:
            self.hold.wait(10)
        with self._lock:
            self.calls += 1
            if self.fail:
                raise StoreUnavailableError("database is locked")
            self.batches.append(list(batch))
        return None

    @property
    def records(self) -> list[IssuanceInput]:
        with self._lock:
            return [item for batch in self.batches for item in batch]


def make_issuer(
    clock: Clock,
    recorder: object | None = None,
    *,
    signer: Authority | None = None,
    root: Authority | None = None,
    **options: object,
) -> Issuer:
    if signer is None or root is None:
        signer, root = make_authorities(clock)
    return Issuer(
        signer=signer,
        roots=[root.cert],
        trust_domain=TRUST_DOMAIN,
        recorder=recorder if recorder is not None else RecordingRecorder(),  # type: ignore[arg-type]
        clock=clock,
        **options,  # type: ignore[arg-type]
    )


# --- openssl as an independent verifier --------------------------------------------------


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.PEM)


def openssl_verify(chain: IssuedChain, at: datetime, workdir: Path) -> str:
    """``openssl verify`` the chain at time ``at`` as a TLS client and a TLS server; returns
    openssl's output. Fails the test if openssl rejects it."""
    openssl = require_binary("openssl", hint=OPENSSL_HINT)
    workdir.mkdir(parents=True, exist_ok=True)
    tag = chain.serial_hex
    root = workdir / f"{tag}-root.pem"
    middle = workdir / f"{tag}-intermediates.pem"
    leaf = workdir / f"{tag}-leaf.pem"
    root.write_bytes(b"".join(_pem(c) for c in chain.roots))
    middle.write_bytes(b"".join(_pem(c) for c in chain.intermediates))
    leaf.write_bytes(_pem(chain.leaf))
    outputs = []
    for purpose in ("sslclient", "sslserver"):
        result = subprocess.run(
            [
                openssl, "verify", "-x509_strict", "-purpose", purpose,
                "-attime", str(int(at.timestamp())),
                "-CAfile", str(root), "-untrusted", str(middle), str(leaf),
            ],
            capture_output=True, text=True, timeout=30, check=False,
        )
        assert result.returncode == 0 and result.stdout.strip().endswith(": OK"), (
            f"openssl verify ({purpose}) rejected serial {tag}: {result.stdout}{result.stderr}"
        )
        outputs.append(result.stdout)
    return "".join(outputs)


def openssl_text(cert: x509.Certificate) -> str:
    """``openssl x509 -text -noout`` of a certificate."""
    openssl = require_binary("openssl", hint=OPENSSL_HINT)
    result = subprocess.run(
        [openssl, "x509", "-text", "-noout"],
        input=_pem(cert), capture_output=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout.decode()


def assert_openssl_sees_x509_svid(cert: x509.Certificate, spiffe_id: str) -> None:
    """openssl's own reading of the leaf shows the X509-SVID profile."""
    text = openssl_text(cert)
    assert f"URI:{spiffe_id}" in text
    assert "X509v3 Key Usage: critical" in text
    usage_line = text.split("X509v3 Key Usage: critical", 1)[1].splitlines()[1]
    assert "Digital Signature" in usage_line
    assert "Certificate Sign" not in usage_line and "CRL Sign" not in usage_line
    assert "TLS Web Server Authentication" in text
    assert "TLS Web Client Authentication" in text
    assert "CA:FALSE" in text
    assert "X509v3 Subject Alternative Name: critical" in text
