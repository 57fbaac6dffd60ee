"""Translation between Envoy's CheckRequest/CheckResponse and the enforcer (no network)."""

from __future__ import annotations

import urllib.parse

import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import attribute_context_pb2, external_auth_pb2

from citadel.authz.decision import Decision
from citadel.authz.enforcer import AccessResult
from citadel.authz.errors import MissingTokenError, NoAllowMatchError
from citadel.authz.ext_authz import access_request_from_check, check_response_for
from tests.unit.authz.conftest import BACKEND, FRONTEND, Pki

AC = attribute_context_pb2.AttributeContext


def _check_request(**http: object) -> external_auth_pb2.CheckRequest:
    request = external_auth_pb2.CheckRequest()
    attrs = request.attributes
    attrs.source.principal = FRONTEND
    attrs.source.address.socket_address.address = "10.0.0.7"
    attrs.source.address.socket_address.port_value = 40000
    attrs.destination.principal = BACKEND
    attrs.destination.address.socket_address.port_value = 8443
    attrs.request.http.CopyFrom(AC.HttpRequest(**http))
    return request


def test_check_request_fields_are_translated(pki: Pki) -> None:
    request = _check_request(
        method="GET",
        path="/api/x?token=1#frag",
        host="api.example.org",
        headers={"authorization": "Bearer a.b.c", "x-other": "1"},
    )
    request.attributes.source.certificate = urllib.parse.quote(pki.frontend.cert_pem.decode())
    access = access_request_from_check(request)
    assert access.peer_principal == FRONTEND
    assert access.peer_certificate == pki.frontend.cert_pem
    assert (access.method, access.path, access.host, access.port) == (
        "GET",
        "/api/x",
        "api.example.org",
        8443,
    )
    assert access.source_ip == "10.0.0.7"
    assert access.destination == BACKEND
    assert access.headers["authorization"] == ("Bearer a.b.c",)
    assert access.grpc_method is None


def test_grpc_requests_are_recognised_by_content_type() -> None:
    request = _check_request(
        method="POST", path="/pkg.Svc/Get", headers={"content-type": "application/grpc+proto"}
    )
    assert access_request_from_check(request).grpc_method == "/pkg.Svc/Get"
    plain = _check_request(
        method="POST", path="/pkg.Svc/Get", headers={"content-type": "text/plain"}
    )
    assert access_request_from_check(plain).grpc_method is None


def test_raw_header_map_keeps_repeated_headers() -> None:
    request = _check_request(
        header_map=base_pb2.HeaderMap(
            headers=[
                base_pb2.HeaderValue(key="authorization", raw_value=b"Bearer a.b.c"),
                base_pb2.HeaderValue(key="Authorization", value="Bearer d.e.f"),
            ]
        )
    )
    assert access_request_from_check(request).headers["authorization"] == (
        "Bearer a.b.c",
        "Bearer d.e.f",
    )


def test_empty_principal_and_certificate_mean_anonymous() -> None:
    request = _check_request()
    request.attributes.source.principal = ""
    access = access_request_from_check(request)
    assert (access.peer_principal, access.peer_certificate) == (None, None)


def test_configured_destination_overrides_envoy() -> None:
    assert access_request_from_check(_check_request(), FRONTEND).destination == FRONTEND


def test_allowed_response_sets_claim_headers_and_strips_the_rest() -> None:
    result = AccessResult(
        decision=Decision(allowed=True, reason="allowed_by_policy"),
        response_headers=(("x-jwt-sub", "alice"),),
        strip_headers=("x-jwt-sub", "x-jwt-groups"),
    )
    response = check_response_for(result)
    assert response.status.code == 0
    (header,) = response.ok_response.headers
    assert (header.header.key, header.header.value) == ("x-jwt-sub", "alice")
    assert header.append_action == base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
    assert list(response.ok_response.headers_to_remove) == ["x-jwt-groups"]


@pytest.mark.parametrize(
    ("error", "grpc_code", "http_code", "body"),
    [
        (NoAllowMatchError("detail: policy x"), 7, 403, "permission denied"),
        (MissingTokenError("detail: issuer y"), 16, 401, "unauthenticated"),
    ],
    ids=["denied", "unauthenticated"],
)
def test_denied_response_is_short(
    error: Exception, grpc_code: int, http_code: int, body: str
) -> None:
    from citadel.authz.errors import AuthzError

    assert isinstance(error, AuthzError)
    result = AccessResult(decision=Decision(allowed=False, reason=error.kind), error=error)
    response = check_response_for(result)
    assert response.status.code == grpc_code
    assert response.denied_response.status.code == http_code
    assert response.denied_response.body == body + "\n"
    assert "detail" not in response.denied_response.body
    headers = {h.header.key: h.header.value for h in response.denied_response.headers}
    assert ("www-authenticate" in headers) is (http_code == 401)
