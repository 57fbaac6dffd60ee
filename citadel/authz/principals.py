"""Peer identity: the SPIFFE ID of a peer certificate, from gRPC's auth context or from Envoy.

The principal is taken only from a certificate the transport verified: gRPC puts the
verified client leaf in the auth context (``x509_pem_cert``) only when the server required
and checked client certificates against its roots; Envoy forwards the leaf it verified.
A peer without a certificate is anonymous (None). A certificate that does not carry exactly
one URI SAN holding a valid SPIFFE ID is an :class:`InvalidPeerError` — never anonymous, so a
broken identity cannot pass where anonymous callers are allowed.
"""

from __future__ import annotations

import functools
import ipaddress
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cryptography import x509

from citadel.authz.errors import ForeignTrustDomainError, InvalidPeerError
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId, TrustDomain

__all__ = [
    "AUTH_CONTEXT_CERT_KEY",
    "PeerAddress",
    "certificate_from_auth_context",
    "establish_peer",
    "parse_grpc_peer",
    "principal_from_auth_context",
    "principal_from_certificate",
    "principal_from_pem",
    "principal_from_url_encoded_pem",
    "resolve_peer_principal",
]

AUTH_CONTEXT_CERT_KEY = "x509_pem_cert"
_MAX_PEM_BYTES = 64 * 1024


def principal_from_certificate(cert: x509.Certificate) -> SpiffeId:
    """The SPIFFE ID in the certificate's single URI SAN.

    Raises:
        InvalidPeerError: no SAN, not exactly one URI SAN, or the URI is not a SPIFFE ID.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound as exc:
        raise InvalidPeerError("peer certificate has no subject alternative name") from exc
    except (ValueError, x509.DuplicateExtension) as exc:
        raise InvalidPeerError("peer certificate extensions are malformed") from exc
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    if len(uris) != 1:
        raise InvalidPeerError(f"peer certificate must carry one URI SAN, found {len(uris)}")
    try:
        return SpiffeId.parse(uris[0])
    except InvalidSpiffeIdError as exc:
        raise InvalidPeerError(f"peer URI SAN is not a SPIFFE ID: {exc.message}") from exc


def principal_from_pem(pem: bytes | str) -> SpiffeId:
    """Parse one PEM certificate and return its SPIFFE ID.

    Raises:
        InvalidPeerError: the PEM is malformed, oversized or its identity is unusable.
    """
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    if len(data) > _MAX_PEM_BYTES:
        raise InvalidPeerError("peer certificate is too large")
    try:
        cert = x509.load_pem_x509_certificate(data)
    except ValueError as exc:
        raise InvalidPeerError("peer certificate is not a valid PEM certificate") from exc
    return principal_from_certificate(cert)


def principal_from_url_encoded_pem(value: str) -> SpiffeId:
    """Envoy's ``source.certificate``: a URL-encoded PEM (``include_peer_certificate``)."""
    if len(value) > 3 * _MAX_PEM_BYTES:
        raise InvalidPeerError("peer certificate is too large")
    return principal_from_pem(urllib.parse.unquote(value))


def certificate_from_auth_context(auth_context: Mapping[str, Iterable[bytes]]) -> bytes | None:
    """The verified client leaf (PEM) from a gRPC auth context, or None without one.

    Raises:
        InvalidPeerError: the context carries more than one leaf.
    """
    certs = list(auth_context.get(AUTH_CONTEXT_CERT_KEY, ()))
    if not certs:
        return None
    if len(certs) != 1:
        raise InvalidPeerError("auth context carries more than one peer certificate")
    return certs[0]


@functools.lru_cache(maxsize=4096)
def _parsed_id(principal: str) -> SpiffeId:
    return SpiffeId.parse(principal)


@functools.lru_cache(maxsize=1024)
def _cached_principal(pem: bytes) -> SpiffeId:
    return principal_from_pem(pem)


def resolve_peer_principal(claimed: str | None, certificate_pem: bytes | None) -> str | None:
    """The peer's principal: from its certificate when there is one, else ``claimed``.

    With both, they must be equal exactly (Envoy forwards both; a mismatch means the
    principal was not derived from this certificate). Parsed certificates are cached.

    Raises:
        InvalidPeerError: the certificate is unusable or disagrees with ``claimed``.
    """
    if certificate_pem is None:
        return claimed
    principal = str(_cached_principal(certificate_pem))
    if claimed is not None and claimed != principal:
        raise InvalidPeerError("peer principal does not match the URI SAN of its certificate")
    return principal


def establish_peer(
    claimed: str | None,
    certificate_pem: bytes | None,
    trust_domains: frozenset[TrustDomain] | None,
) -> str | None:
    """The peer's principal after every identity check (see :func:`resolve_peer_principal`).

    Raises:
        InvalidPeerError: the identity is not one valid SPIFFE ID, or disagrees with the cert.
        ForeignTrustDomainError: ``trust_domains`` is set and does not hold the peer's.
    """
    principal = resolve_peer_principal(claimed, certificate_pem)
    if principal is None:
        return None
    try:
        spiffe_id = _parsed_id(principal)
    except InvalidSpiffeIdError as exc:
        raise InvalidPeerError(f"peer principal is not a SPIFFE ID: {exc.message}") from exc
    if trust_domains is not None and spiffe_id.trust_domain not in trust_domains:
        raise ForeignTrustDomainError(f"peer trust domain {spiffe_id.trust_domain} is not accepted")
    return principal


def principal_from_auth_context(auth_context: Mapping[str, Iterable[bytes]]) -> SpiffeId | None:
    """The verified client's SPIFFE ID from a gRPC auth context, or None without a cert.

    Raises:
        InvalidPeerError: a certificate is present but its identity is unusable.
    """
    pem = certificate_from_auth_context(auth_context)
    return None if pem is None else _cached_principal(pem)


@dataclass(frozen=True, slots=True)
class PeerAddress:
    """A parsed gRPC peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``, ``unix:/path``)."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    port: int | None
    local: bool


def parse_grpc_peer(peer: str | None) -> PeerAddress:
    """Parse ``context.peer()``. Unix-socket peers are ``local``; unknown forms give nothing."""
    if not peer:
        return PeerAddress(None, None, False)
    kind, _, rest = peer.partition(":")
    if kind in ("unix", "unix-abstract"):
        return PeerAddress(None, None, True)
    if kind not in ("ipv4", "ipv6"):
        return PeerAddress(None, None, False)
    host, _, port = rest.rpartition(":")
    host = urllib.parse.unquote(host).strip("[]")
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return PeerAddress(None, None, False)
    return PeerAddress(ip, int(port) if port.isdigit() else None, False)
