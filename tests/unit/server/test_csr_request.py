from __future__ import annotations

from datetime import timedelta

import pytest
from google.protobuf import struct_pb2

from citadel._proto import istio_ca_pb2
from citadel.ca.errors import TtlError
from citadel.server.csr_request import CsrRequest
from citadel.server.errors import InvalidRequestError, RequestTooLargeError


def _request(**fields: object) -> CsrRequest:
    metadata = struct_pb2.Struct()
    metadata.update(fields)  # type: ignore[arg-type]
    return CsrRequest.from_proto(
        istio_ca_pb2.IstioCertificateRequest(csr="pem", validity_duration=0, metadata=metadata)
    )


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, None), (1, timedelta(seconds=1)), (86400, timedelta(days=1))],
    ids=["zero-means-default", "one-second", "one-day"],
)
def test_validity_becomes_a_ttl(seconds: int, expected: timedelta | None) -> None:
    assert CsrRequest(csr_pem="x", validity_seconds=seconds).ttl() == expected


@pytest.mark.parametrize("seconds", [-1, 2**62], ids=["negative", "absurd"])
def test_unusable_validity_is_a_ttl_error(seconds: int) -> None:
    with pytest.raises(TtlError):
        CsrRequest(csr_pem="x", validity_seconds=seconds).ttl()


def test_csr_over_64_kib_is_too_large() -> None:
    CsrRequest(csr_pem="a" * 65536).checked_csr()
    with pytest.raises(RequestTooLargeError):
        CsrRequest(csr_pem="a" * 65537).checked_csr()


def test_metadata_strings_are_read() -> None:
    request = _request(ImpersonatedIdentity="spiffe://td/ns/a/sa/b", CertSigner="kubernetes")
    assert request.impersonated_identity() == "spiffe://td/ns/a/sa/b"
    assert request.cert_signer() == "kubernetes"
    assert _request().impersonated_identity() is None
    assert _request(ImpersonatedIdentity="").impersonated_identity() is None


@pytest.mark.parametrize(
    "value",
    [42, True, ["spiffe://td/a"], {"id": "x"}, "x" * 3000],
    ids=["number", "bool", "list", "struct", "too-long"],
)
def test_unusable_impersonated_identity_is_invalid(value: object) -> None:
    with pytest.raises(InvalidRequestError):
        _request(ImpersonatedIdentity=value).impersonated_identity()
