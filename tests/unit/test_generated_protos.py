"""The generated gRPC code must match citadel/protos/*.proto."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_code_is_fresh() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_istio_csr_api_keeps_its_wire_names_and_field_numbers() -> None:
    from citadel._proto import istio_ca_pb2

    request = istio_ca_pb2.IstioCertificateRequest.DESCRIPTOR
    assert request.full_name == "istio.v1.auth.IstioCertificateRequest"
    assert {f.name: f.number for f in request.fields} == {
        "csr": 1,
        "validity_duration": 3,
        "metadata": 4,
    }
    response = istio_ca_pb2.IstioCertificateResponse.DESCRIPTOR
    assert {f.name: f.number for f in response.fields} == {"cert_chain": 1}
    service = istio_ca_pb2.DESCRIPTOR.services_by_name["IstioCertificateService"]
    assert service.full_name == "istio.v1.auth.IstioCertificateService"
    assert [m.name for m in service.methods] == ["CreateCertificate"]
