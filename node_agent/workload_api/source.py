"""What the Workload API serves from: the consumer-side view of the agent's secret cache.

The Workload API owns this small protocol; the node agent's cache implements it. It says
nothing about how SVIDs are obtained or rotated, only what a workload may be given and
when that changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from citadel.identity.bundle import TrustBundle
from citadel.identity.keys import (
    PrivateKey,
    load_private_key_pem,
    private_key_to_pkcs8_der,
)
from citadel.identity.pem import load_certificates_pem
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId

__all__ = [
    "IdentitySource",
    "SourceSubscription",
    "WorkloadIdentity",
    "X509SvidMaterial",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class X509SvidMaterial:
    """An X509-SVID as the Workload API hands it out.

    Attributes:
        chain_der: DER certificates, the leaf first, then intermediates (no root).
        private_key_der: the leaf's unencrypted PKCS#8 DER key (never in ``repr``).
        serial_hex: the leaf serial, for logs.
    """

    chain_der: tuple[bytes, ...]
    private_key_der: bytes = field(repr=False)
    serial_hex: str = ""

    def __post_init__(self) -> None:
        if not self.chain_der or not all(self.chain_der):
            raise ValueError("an X509-SVID needs a non-empty DER chain")
        if not self.private_key_der:
            raise ValueError("an X509-SVID needs its private key")

    @classmethod
    def from_chain(
        cls, chain: Sequence[x509.Certificate], private_key: PrivateKey
    ) -> X509SvidMaterial:
        """From certificate objects (leaf first) and the leaf's private key."""
        if not chain:
            raise ValueError("an X509-SVID needs a non-empty chain")
        return cls(
            chain_der=tuple(c.public_bytes(serialization.Encoding.DER) for c in chain),
            private_key_der=private_key_to_pkcs8_der(private_key),
            serial_hex=format(chain[0].serial_number, "x"),
        )

    @classmethod
    def from_pem(cls, cert_chain_pem: bytes, private_key_pem: bytes) -> X509SvidMaterial:
        """From a PEM chain (leaf first) and a PEM private key, as the cache stores them.

        Raises:
            InvalidCertificateError / InvalidKeyError: malformed PEM.
        """
        chain = load_certificates_pem(cert_chain_pem, what="X509-SVID chain")
        return cls.from_chain(chain, load_private_key_pem(private_key_pem))


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkloadIdentity:
    """One identity a workload is entitled to (one matching registration entry).

    ``x509_svid`` is None while the agent has not obtained the SVID yet: the workload is
    entitled, but FetchX509SVID waits for it rather than answering PERMISSION_DENIED.
    """

    entry_id: str
    spiffe_id: SpiffeId
    x509_svid: X509SvidMaterial | None = None
    hint: str = ""


class SourceSubscription(Protocol):
    def close(self) -> None:
        """Stop the notifications (idempotent)."""
        ...


class IdentitySource(Protocol):
    """The agent-side state behind the Workload API (implemented by the secret cache)."""

    def identities_for(self, selectors: frozenset[Selector]) -> Sequence[WorkloadIdentity]:
        """The identities of every registration entry whose selectors are a subset of
        ``selectors``; the first one is the workload's default identity. Non-blocking."""
        ...

    def trust_bundles(self) -> Sequence[TrustBundle]:
        """The bundles (X.509 roots and JWT keys) of the agent's own trust domain and of
        every federated one. Non-blocking."""
        ...

    def crls(self) -> Sequence[bytes]:
        """DER CRLs to hand to workloads (possibly none). Non-blocking."""
        ...

    def mint_jwt_svid(self, spiffe_id: SpiffeId, audiences: tuple[str, ...]) -> str:
        """A JWT-SVID for ``spiffe_id`` and ``audiences`` (may block on the CA; may cache).

        Raises:
            AgentError: the CA is unreachable or refused (CaUnreachableError, ...).
        """
        ...

    def subscribe(self, listener: Callable[[], None]) -> SourceSubscription:
        """Call ``listener()`` (from any thread, without arguments) after any change to
        the answers above: an SVID rotated, an entry added or removed, a bundle or CRL
        updated. Spurious calls are allowed."""
        ...
