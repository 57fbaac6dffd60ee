"""SIGKILL of a CA worker while clients sign: nothing a client received is unaccounted for.

``citadel serve --workers 2`` on SQLite; eight mTLS clients sign back to back; one worker
is killed with SIGKILL mid-load. Afterwards every serial a client received is in the audit
log (and in the certificate table), no serial appears twice, ``citadel audit verify``
passes, the supervisor replaced the worker, and both workers serve again.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.integration.server.serve_process import CitadelServe
from tests.resilience.harness import (
    IssuedLog,
    MtlsSigner,
    alive,
    audit_issued_serials,
    audit_verify,
    mint,
    sign_until,
    worker_pids,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(150)]

IDENTITIES = [f"spiffe://cluster.local/ns/load/sa/w{i}" for i in range(4)]
LISTENING = "CSR API listening on port"
ARGS = [
    "--workers", "2", "--listen", "127.0.0.1:0", "--mtls-listen", "127.0.0.1:0",
    "--metrics-listen", "off", "--rate", "0", "--identity-rate", "0", "--grace", "5s",
]  # fmt: skip


def test_sigkill_of_a_worker_loses_no_issued_certificate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    log = IssuedLog()
    with CitadelServe(data, ARGS) as serve:
        assert serve.process is not None
        root = serve.root_pem()
        target = f"127.0.0.1:{serve.ready['mtls_port']}"
        signers = [
            MtlsSigner(target, root, spiffe_id, *mint(data, spiffe_id, tmp_path / f"m{i}"))
            for i, spiffe_id in enumerate(IDENTITIES * 2)
        ]
        before = worker_pids(serve.process.pid)
        assert len(before) == 2, before
        stop = threading.Event()
        load = threading.Thread(target=sign_until, args=(signers, stop.is_set, log))
        load.start()
        try:
            deadline = time.monotonic() + 20
            while len(log.serials) < 40:  # well into the load
                assert time.monotonic() < deadline, (log.refusals, serve.log()[-2000:])
                time.sleep(0.05)
            victim = before[-1]
            os.kill(victim, signal.SIGKILL)
            killed_at = len(log.serials)
            # The load goes on through the other worker and then the replacement.
            deadline = time.monotonic() + 60
            while True:
                now = worker_pids(serve.process.pid)
                serving = serve.log().count(LISTENING)
                if len(now) == 2 and victim not in now and all(map(alive, now)) and serving == 3:
                    break
                assert time.monotonic() < deadline, f"no replacement worker: {serve.log()[-2000:]}"
                time.sleep(0.1)
            replaced_at = len(log.serials)
            time.sleep(3.0)  # both workers serve the load again
        finally:
            stop.set()
            load.join(60)
            for signer in signers:
                signer.close()
        after_restart = len(log.serials) - replaced_at
        serve.terminate()
        assert serve.wait(60) == 0, serve.log()[-3000:]

    url = f"sqlite:///{data / 'citadel.db'}"
    audited = audit_issued_serials(url)
    received = log.serials
    assert killed_at >= 40 and after_restart > 0, (killed_at, replaced_at, len(received))
    assert len(set(received)) == len(received), "a serial was handed out twice"
    assert len(set(audited)) == len(audited), "a serial was audited twice"
    missing = set(received) - set(audited)
    assert not missing, f"{len(missing)} received certificates are not in the audit log"
    # Refusals during the kill are retryable transport errors, never a wrong answer.
    assert set(log.refusals) <= {"UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"}, log.details
    assert "Audit chain OK" in audit_verify(data)
    assert "exited with -9; restarting" in serve.log()
    print(
        f"worker SIGKILL: {len(received)} certificates received ({killed_at} before the kill, "
        f"{after_restart} after the replacement served), {len(audited)} audited, "
        f"refusals {log.refusals or 'none'}"
    )
