"""What the CA hands back for a signed request: the leaf, the chain above it, the roots."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SpiffeId

__all__ = ["IssuedChain"]


@dataclass(frozen=True)
class IssuedChain:
    """An issued X509-SVID with its chain.

    Attributes:
        leaf: the workload certificate.
        intermediates: the CA certificates between the leaf and the root, nearest first.
        roots: the trust bundle's roots (the current one and any being rotated in).
    """

    leaf: x509.Certificate
    intermediates: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]
    serial_hex: str
    spiffe_id: SpiffeId
    leaf_pem: str = field(default="", repr=False, compare=False)
    intermediates_pem: tuple[str, ...] = field(default=(), repr=False, compare=False)
    roots_pem: str = field(default="", repr=False, compare=False)

    @property
    def not_after(self) -> datetime:
        return self.leaf.not_valid_after_utc

    def cert_chain_pem(self) -> list[str]:
        """``[leaf, intermediates..., roots]``: one PEM string per certificate, except the
        roots, which are concatenated into the last string (Istio's ``cert_chain``)."""
        leaf = self.leaf_pem or self.leaf.public_bytes(Encoding.PEM).decode("ascii")
        middle = self.intermediates_pem or tuple(
            cert.public_bytes(Encoding.PEM).decode("ascii") for cert in self.intermediates
        )
        roots = self.roots_pem or certificates_to_pem(self.roots)
        return [leaf, *middle, roots]

    def chain_pem(self) -> str:
        """The leaf and intermediates as one PEM blob (a ``cert-chain.pem`` file)."""
        return "".join(self.cert_chain_pem()[:-1])
