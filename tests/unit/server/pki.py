"""A throw-away PKI (root → intermediate → leaves) for authenticator unit tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from citadel.identity.keys import KeyType, PrivateKey, generate_private_key
from citadel.identity.pem import certificates_to_pem
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_templates import CaSpec, LeafSpec, ca_builder, leaf_builder


@dataclass(frozen=True)
class ThrowawayPki:
    trust_domain: TrustDomain
    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: PrivateKey

    def leaf(
        self, spiffe_id: str, *, not_before: datetime, not_after: datetime
    ) -> tuple[x509.Certificate, PrivateKey]:
        key = generate_private_key(KeyType.EC_P256)
        spec = LeafSpec(
            spiffe_id=SpiffeId.parse(spiffe_id), public_key=key.public_key(),
            not_before=not_before, not_after=not_after,
        )  # fmt: skip
        cert = leaf_builder(spec, self.intermediate).sign(self.intermediate_key, hashes.SHA256())
        return cert, key

    def leaf_pem(self, spiffe_id: str, *, now: datetime) -> tuple[bytes, bytes]:
        """(leaf PEM, intermediate PEM) as the TLS layer reports them."""
        cert, _ = self.leaf(
            spiffe_id, not_before=now - timedelta(minutes=5), not_after=now + timedelta(hours=1)
        )
        return (
            certificates_to_pem([cert]).encode(),
            certificates_to_pem([self.intermediate]).encode(),
        )


def make_pki(trust_domain: str, *, now: datetime) -> ThrowawayPki:
    td = TrustDomain(trust_domain)
    root_key = generate_private_key(KeyType.EC_P256)
    start, end = now - timedelta(days=1), now + timedelta(days=30)
    root = ca_builder(
        CaSpec(trust_domain=td, common_name="test root", public_key=root_key.public_key(),
               not_before=start, not_after=end)
    ).sign(root_key, hashes.SHA256())  # fmt: skip
    intermediate_key = generate_private_key(KeyType.EC_P256)
    intermediate = ca_builder(
        CaSpec(trust_domain=td, common_name="test intermediate",
               public_key=intermediate_key.public_key(), not_before=start, not_after=end),
        root,
    ).sign(root_key, hashes.SHA256())  # fmt: skip
    return ThrowawayPki(td, root, intermediate, intermediate_key)
