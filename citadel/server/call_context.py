"""What an authenticator may look at: the call's metadata and its TLS peer.

:class:`CallContext` is built once per call from the gRPC context, so authenticators are
plain functions of data and are tested without a network.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["CallContext"]

_PEER_CERT = "x509_pem_cert"
_PEER_CHAIN = "x509_pem_cert_chain"


def _values(value: bytes | Iterable[bytes] | None) -> list[bytes]:
    if value is None:
        return []
    if isinstance(value, bytes):
        return [value]
    return [bytes(v) for v in value]


@dataclass(frozen=True, kw_only=True, slots=True)
class CallContext:
    """One call's credentials.

    Attributes:
        metadata: text metadata as (lowercase key, value) pairs, in arrival order; binary
            (``-bin``) entries are left out.
        peer_certificate_pem: the client certificate the TLS layer received, if any.
        peer_chain_pem: the other certificates the client sent (intermediates, maybe roots).
        peer: gRPC's peer string (``ipv4:127.0.0.1:5555``), for logs only.
    """

    metadata: tuple[tuple[str, str], ...] = ()
    peer_certificate_pem: bytes | None = None
    peer_chain_pem: tuple[bytes, ...] = ()
    peer: str = ""

    def values(self, key: str) -> tuple[str, ...]:
        wanted = key.lower()
        return tuple(value for name, value in self.metadata if name == wanted)

    @classmethod
    def from_metadata(
        cls, metadata: Iterable[tuple[str, str | bytes]] | Mapping[str, str], **kwargs: Any
    ) -> CallContext:
        items = metadata.items() if isinstance(metadata, Mapping) else metadata
        text = tuple(
            (str(name).lower(), value)
            for name, value in items
            if isinstance(value, str) and not str(name).endswith("-bin")
        )
        return cls(metadata=text, **kwargs)

    @classmethod
    def from_grpc(cls, context: grpc.ServicerContext) -> CallContext:
        auth = context.auth_context()
        leaf = _values(auth.get(_PEER_CERT))
        chain = _values(auth.get(_PEER_CHAIN))
        return cls.from_metadata(
            context.invocation_metadata() or (),
            peer_certificate_pem=bytes(leaf[0]) if leaf else None,
            peer_chain_pem=tuple(bytes(c) for c in chain),
            peer=context.peer() or "",
        )
