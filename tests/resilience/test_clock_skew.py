"""Clock skew between the CA and a node agent.

The CA backdates NotBefore by 2 minutes. An agent whose clock differs from the CA's by less
than that (ahead or behind by 90 s) accepts and publishes what the CA issues. An agent whose
clock is further behind sees a certificate that is not valid yet, one far ahead sees it
expired: both refuse it with a clear, typed error naming the validity window, keep serving
nothing bad, and say so in the log and status.

The CA is the real ``citadel serve``; the agent side is the node agent's real rotator and
CA client, run here with a skewed clock (the agent's checks use the injected clock).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from citadel.identity.clock import SystemClock
from citadel.identity.spiffe_id import SpiffeId
from node_agent.ca_client import CaClient, CaEndpoint
from node_agent.credentials import CertificateFileCredential
from node_agent.metrics import AgentMetrics
from node_agent.rotator import CertificateRotator, RotatorSettings
from node_agent.scheduler import Scheduler
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import SecretValidator
from node_agent.secrets import DEFAULT_CERTIFICATE, TlsCertificateSecret
from tests.integration.server.serve_process import CitadelServe
from tests.resilience.harness import mint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SPIFFE_ID = "spiffe://cluster.local/ns/skew/sa/agent"
TTL = timedelta(minutes=10)
NOT_YET = r"does not verify: the certificate is not valid yet: .* clock is probably behind the CA"
EXPIRED = r"does not verify: the certificate has already expired: .* clock is probably ahead"
ARGS = [
    "--workers", "1", "--listen", "127.0.0.1:0", "--mtls-listen", "127.0.0.1:0",
    "--metrics-listen", "off", "--rate", "0", "--identity-rate", "0", "--grace", "1s",
]  # fmt: skip


class SkewedClock:
    """The host's clock, ``offset`` away (positive: the agent is ahead of the CA)."""

    def __init__(self, offset: timedelta) -> None:
        self._system = SystemClock()
        self.offset = offset

    def now(self) -> datetime:
        return self._system.now() + self.offset


class Ca:
    def __init__(self, serve: CitadelServe, base: Path) -> None:
        self.serve = serve
        self.roots = base / "roots.pem"
        self.roots.write_bytes(serve.root_pem())
        mint(serve.data_dir, SPIFFE_ID, base / "boot")
        self.boot = base / "boot"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ca]:
    base = tmp_path_factory.mktemp("skew")
    with CitadelServe(base / "data", ARGS) as serve:
        yield Ca(serve, base)


def _rotator(ca: Ca, clock: SkewedClock) -> tuple[CertificateRotator, SecretCache]:
    cache = SecretCache(clock)
    rotator = CertificateRotator(
        RotatorSettings(spiffe_id=SpiffeId.parse(SPIFFE_ID), root_bundle_path=ca.roots, ttl=TTL),
        signer=CaClient(
            CaEndpoint(
                address=f"127.0.0.1:{ca.serve.ready['port']}",
                mtls_address=f"127.0.0.1:{ca.serve.ready['mtls_port']}",
                server_name="localhost",
            )
        ),
        bootstrap=CertificateFileCredential(ca.boot / "cert-chain.pem", ca.boot / "key.pem"),
        cache=cache,
        scheduler=Scheduler(clock),  # never started: one renewal per call, run here
        clock=clock,
        metrics=AgentMetrics(),
        validator=SecretValidator(),
        rng=random.Random(7),
    )
    return rotator, cache


@pytest.mark.parametrize(
    "offset",
    [timedelta(seconds=90), timedelta(seconds=-90), timedelta(seconds=-115)],
    ids=["agent-90s-ahead", "agent-90s-behind", "agent-115s-behind"],
)
def test_skew_within_the_backdate_window_is_accepted(ca: Ca, offset: timedelta) -> None:
    clock = SkewedClock(offset)
    rotator, cache = _rotator(ca, clock)
    assert rotator.renew(), rotator.last_error
    entry = cache.get(DEFAULT_CERTIFICATE)
    assert entry is not None
    secret = entry.secret
    assert isinstance(secret, TlsCertificateSecret)
    assert secret.not_before <= clock.now() < secret.not_after
    assert rotator.last_error is None


@pytest.mark.parametrize(
    ("offset", "problem"),
    [
        (timedelta(minutes=-3), NOT_YET),
        (timedelta(hours=-2), NOT_YET),
        (TTL + timedelta(minutes=1), EXPIRED),
    ],
    ids=["agent-3min-behind", "agent-2h-behind", "agent-past-the-lifetime-ahead"],
)
def test_skew_beyond_the_window_is_a_clear_error(
    ca: Ca, offset: timedelta, problem: str, caplog: pytest.LogCaptureFixture
) -> None:
    rotator, cache = _rotator(ca, SkewedClock(offset))
    with caplog.at_level(logging.ERROR, logger="node_agent.rotator"):
        assert not rotator.renew()
    error = rotator.last_error
    assert error is not None and error.kind == "invalid_issued_chain", error
    assert re.search(problem, error.message), error.message
    assert cache.get(DEFAULT_CERTIFICATE) is None, "a certificate unusable here was published"
    assert "cannot obtain a certificate (invalid_issued_chain" in caplog.text
    print(f"agent {offset.total_seconds():+.0f}s from the CA: {error.kind}: {error.message}")
