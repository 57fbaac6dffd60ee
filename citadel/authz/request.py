"""The engine's view of one request: who is calling, with which token, and what for."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["IpAddress", "RequestContext", "namespace_of"]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_NO_HEADERS: Mapping[str, tuple[str, ...]] = MappingProxyType({})


def namespace_of(principal: str | None) -> str | None:
    """The ``<ns>`` of ``spiffe://<td>/ns/<ns>/sa/<sa>``, else None."""
    if principal is None or not principal.startswith("spiffe://"):
        return None
    parts = principal[len("spiffe://") :].split("/")
    if len(parts) == 5 and parts[1] == "ns" and parts[3] == "sa" and parts[2] and parts[4]:
        return parts[2]
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestContext:
    """Inputs of one decision. Build with :meth:`create`, which derives the namespace.

    Attributes:
        principal: the peer's SPIFFE ID from a verified certificate, or None (anonymous).
        request_principal: ``<iss>/<sub>`` of a verified JWT, or None.
        claims: the verified JWT's claims (empty without a token).
        headers: lowercase header names to their values (used by ``request.headers[x]``).
        destination: the protected workload's SPIFFE ID (selects targeted policies).
    """

    principal: str | None = None
    namespace: str | None = None
    request_principal: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    audiences: tuple[str, ...] = ()
    grpc_method: str | None = None
    method: str | None = None
    path: str | None = None
    host: str | None = None
    port: int | None = None
    source_ip: IpAddress | None = None
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: _NO_HEADERS)
    destination: str | None = None

    @classmethod
    def create(
        cls,
        *,
        principal: str | None = None,
        request_principal: str | None = None,
        claims: Mapping[str, Any] | None = None,
        audiences: tuple[str, ...] = (),
        grpc_method: str | None = None,
        method: str | None = None,
        path: str | None = None,
        host: str | None = None,
        port: int | None = None,
        source_ip: str | IpAddress | None = None,
        headers: Mapping[str, tuple[str, ...]] | None = None,
        destination: str | None = None,
    ) -> RequestContext:
        """Build a context. A gRPC call is also an HTTP/2 ``POST`` to its method path.

        Raises:
            ValueError: ``source_ip`` is not an IP address.
        """
        if isinstance(source_ip, str):
            source_ip = ipaddress.ip_address(source_ip)
        if grpc_method is not None:
            method = method or "POST"
            path = path or grpc_method
        return cls(
            principal=principal,
            namespace=namespace_of(principal),
            request_principal=request_principal,
            claims=MappingProxyType(dict(claims)) if claims else _EMPTY,
            audiences=audiences,
            grpc_method=grpc_method,
            method=method,
            path=path,
            host=host.lower() if host is not None else None,
            port=port,
            source_ip=source_ip,
            headers=headers if headers is not None else _NO_HEADERS,
            destination=destination,
        )
