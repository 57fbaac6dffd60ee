"""PostgreSQL stops under a running CA, then comes back: CSRs fail with UNAVAILABLE (quickly,
never INTERNAL, never a hang), recover on their own, and nothing is half-written.

The CA is ``citadel serve`` on a private PostgreSQL server (``tests.peers.postgres``), which
the test stops (``pg_ctl stop -m fast``: every connection is cut) and restarts on its port.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from citadel.store.repository import Repository
from tests.integration.server.serve_process import CitadelServe
from tests.peers.postgres import (
    PostgresServer,
    restart_postgres,
    running_postgres,
    stop_postgres,
)
from tests.resilience.harness import (
    IssuedLog,
    MtlsSigner,
    audit_issued_serials,
    audit_verify,
    mint,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(180)]

ARGS = [
    "--workers", "1", "--listen", "127.0.0.1:0", "--mtls-listen", "127.0.0.1:0",
    "--metrics-listen", "off", "--rate", "0", "--identity-rate", "0", "--grace", "5s",
]  # fmt: skip
CALL_BOUND_S = 12.0  # the client deadline is 10 s; a refusal must come before it


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


def _sign_for(signer: MtlsSigner, seconds: float, log: IssuedLog) -> list[float]:
    """Sign back to back for ``seconds``; returns each refused call's duration."""
    durations: list[float] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.monotonic()
        try:
            log.received(signer.sign())
        except grpc.RpcError as exc:
            log.refused(exc)
            durations.append(time.monotonic() - started)
            time.sleep(0.2)
    return durations


def test_csrs_fail_unavailable_while_the_database_is_down_and_recover_after(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres.url()
    monkeypatch.setenv("CITADEL_DB_URL", url)  # read by citadel serve and every citadel command
    data = tmp_path / "data"
    up, down, back = IssuedLog(), IssuedLog(), IssuedLog()
    with CitadelServe(data, ARGS) as serve:
        root = serve.root_pem()
        target = f"127.0.0.1:{serve.ready['mtls_port']}"
        spiffe_id = "spiffe://cluster.local/ns/db/sa/client"
        signer = MtlsSigner(target, root, spiffe_id, *mint(data, spiffe_id, tmp_path / "m"))
        try:
            _sign_for(signer, 1.5, up)
            assert up.serials and not up.refusals, up.details

            stop_postgres(postgres, remove=False)
            refused_in = _sign_for(signer, 4.0, down)
            assert down.serials == [], "a certificate was issued without its database"
            assert set(down.refusals) == {"UNAVAILABLE"}, down.details
            assert max(refused_in) < CALL_BOUND_S, refused_in

            restart_postgres(postgres)
            deadline = time.monotonic() + 30
            while not back.serials:
                assert time.monotonic() < deadline, f"no recovery: {back.details[-3:]}"
                _sign_for(signer, 0.5, back)
            recovered = len(back.refusals)
            _sign_for(signer, 1.0, back)
        finally:
            signer.close()
        serve.terminate()
        assert serve.wait(60) == 0, serve.log()[-3000:]
        assert "Traceback" not in serve.log()

    received = up.serials + back.serials
    audited = audit_issued_serials(url)
    assert set(received) <= set(audited)
    assert len(set(audited)) == len(audited)
    repository = Repository.open(url, auto_upgrade=False)
    try:
        stored = {c.serial_hex for c in repository.list_certificates(limit=10_000)}
    finally:
        repository.close()
    # One transaction per issuance: a stored certificate has its audit event and back.
    # (The CA's own serving certificate is stored and audited like any other.)
    assert stored == set(audited), "half-written issuance"
    assert "Audit chain OK" in audit_verify(data)
    print(
        f"database outage: {len(up.serials)} issued before, {sum(down.refusals.values())} "
        f"refused UNAVAILABLE while down (slowest {max(refused_in):.2f}s), "
        f"{recovered} refused after the restart before the first success, "
        f"{len(back.serials)} issued after"
    )
