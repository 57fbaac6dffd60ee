"""Envoy ext_authz (``envoy.service.auth.v3.Authorization/Check``) over the authz enforcer.

Mapping from Envoy's CheckRequest:
    * principal: ``attributes.source.principal`` (the URI SAN Envoy verified); when
      ``attributes.source.certificate`` (URL-encoded PEM) is present its single URI SAN must
      equal that principal exactly, else the request is rejected (401);
    * JWT: the ``authorization`` header (more than one value is rejected);
    * destination: ``attributes.destination.principal`` (selects targeted policies);
    * method, path (query and fragment removed), host, destination port, source address;
      a request with a ``application/grpc`` content type is also a gRPC call to its path.

Denials get 403 (policy) or 401 (credential) with a short body; allowed requests get the
claim-to-header output, and the output headers a client sent itself are removed.
"""

from __future__ import annotations

import asyncio
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.service.auth.v3 import external_auth_pb2, external_auth_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.rpc import status_pb2

from citadel.authz.enforcer import AccessRequest, AccessResult, CallAuthorizer
from citadel.authz.errors import AuthenticationError
from citadel.authz.grpc_status import client_message, grpc_code_for, http_status_for

__all__ = [
    "AioExtAuthzServicer",
    "ExtAuthzServicer",
    "access_request_from_check",
    "check_response_for",
]

_MAX_CERT_CHARS = 192 * 1024
_GRPC_PATH = re.compile(r"^/[A-Za-z_][A-Za-z0-9_.]*/[A-Za-z_][A-Za-z0-9_]*$")


def _headers(http: Any) -> dict[str, tuple[str, ...]]:
    raw = list(http.header_map.headers) if http.HasField("header_map") else []
    if raw:
        out: dict[str, list[str]] = {}
        for header in raw:
            value = header.value or header.raw_value.decode("utf-8", "replace")
            out.setdefault(header.key.lower(), []).append(value)
        return {k: tuple(v) for k, v in out.items()}
    return {key.lower(): (value,) for key, value in http.headers.items()}


def _certificate(encoded: str) -> bytes | None:
    if not encoded:
        return None
    if len(encoded) > _MAX_CERT_CHARS:
        return b"oversized"  # parsing then fails: rejected as an invalid peer
    return urllib.parse.unquote(encoded).encode("ascii", "replace")


def _source_ip(source: Any) -> str | None:
    if not source.HasField("address"):
        return None
    return source.address.socket_address.address or None


def access_request_from_check(request: Any, destination: str | None = None) -> AccessRequest:
    """Translate a CheckRequest. ``destination`` overrides ``destination.principal``."""
    attributes = request.attributes
    source, target = attributes.source, attributes.destination
    http = attributes.request.http
    headers = _headers(http)
    path = http.path.split("?", 1)[0].split("#", 1)[0] if http.path else None
    content_type = headers.get("content-type", ("",))[0]
    is_grpc = content_type.startswith("application/grpc") and bool(path and _GRPC_PATH.match(path))
    port = target.address.socket_address.port_value if target.HasField("address") else 0
    return AccessRequest(
        peer_principal=source.principal or None,
        peer_certificate=_certificate(source.certificate),
        headers=headers,
        grpc_method=path if is_grpc else None,
        method=http.method or None,
        path=path,
        host=http.host or None,
        port=port or None,
        source_ip=_source_ip(source),
        destination=destination or target.principal or None,
    )


def _header_options(pairs: Iterable[tuple[str, str]]) -> list[Any]:
    overwrite = base_pb2.HeaderValueOption.HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD
    return [
        base_pb2.HeaderValueOption(
            header=base_pb2.HeaderValue(key=key, value=value), append_action=overwrite
        )
        for key, value in pairs
    ]


def check_response_for(result: AccessResult) -> Any:
    """Build the CheckResponse for an access result."""
    if result.allowed:
        emitted = {key for key, _ in result.response_headers}
        return external_auth_pb2.CheckResponse(
            status=status_pb2.Status(code=0),
            ok_response=external_auth_pb2.OkHttpResponse(
                headers=_header_options(result.response_headers),
                headers_to_remove=[h for h in result.strip_headers if h not in emitted],
            ),
        )
    error = result.error
    if error is None:  # an authorizer that denies without an error: a plain denial
        code, http_code, body = grpc.StatusCode.PERMISSION_DENIED, 403, "permission denied"
    else:
        code, http_code, body = grpc_code_for(error), http_status_for(error), client_message(error)
    extra = [("content-type", "text/plain")]
    if isinstance(error, AuthenticationError):
        extra.append(("www-authenticate", "Bearer"))
    return external_auth_pb2.CheckResponse(
        status=status_pb2.Status(code=code.value[0], message=body),
        denied_response=external_auth_pb2.DeniedHttpResponse(
            status=http_status_pb2.HttpStatus(code=http_code),
            headers=_header_options(extra),
            body=body + "\n",
        ),
    )


class ExtAuthzServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc, unused-ignore]
    """Sync servicer, for ``grpc.server``."""

    def __init__(self, authorizer: CallAuthorizer, *, destination: str | None = None) -> None:
        self._authorizer = authorizer
        self._destination = destination

    def Check(self, request: Any, context: Any) -> Any:
        access = access_request_from_check(request, self._destination)
        return check_response_for(self._authorizer.check(access))


class AioExtAuthzServicer(external_auth_pb2_grpc.AuthorizationServicer):  # type: ignore[misc, unused-ignore]
    """Asyncio servicer, for ``grpc.aio.server`` (the node agent embeds this one)."""

    def __init__(self, authorizer: CallAuthorizer, *, destination: str | None = None) -> None:
        self._authorizer = authorizer
        self._destination = destination

    async def Check(self, request: Any, context: Any) -> Any:
        access = access_request_from_check(request, self._destination)
        result = await asyncio.to_thread(self._authorizer.check, access)
        return check_response_for(result)
