"""A real CA (SQLite repository, memory key manager, issuer, watcher) for lifecycle tests:
rotation, revocation, CRLs, plug-in and upstream CAs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from citadel.ca.authority_watch import AuthorityWatcher
from citadel.ca.bootstrap import initialise_authorities
from citadel.ca.config import CaConfig
from citadel.ca.crl import CrlPublisher
from citadel.ca.issued_chain import IssuedChain
from citadel.ca.issuer import Issuer, SignParams
from citadel.ca.keymanager import MemoryKeyManager
from citadel.ca.revocation import Revoker
from citadel.ca.revocation_index import RevocationIndex
from citadel.ca.rotation.policy import RotationPolicy
from citadel.ca.rotation.steps import AuthorityRotation
from citadel.identity.chain import verify_svid_chain
from citadel.identity.clock import ManualClock
from citadel.identity.keys import PrivateKey, generate_private_key, private_key_to_pkcs8_pem
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.identity.x509_templates import CaSpec, ca_builder
from citadel.store.repository import Repository

TRUST_DOMAIN = TrustDomain("example.org")
PROPAGATION = timedelta(hours=6)


@dataclass
class LifecycleCa:
    repository: Repository
    key_manager: MemoryKeyManager
    config: CaConfig
    clock: ManualClock
    issuer: Issuer
    rotation: AuthorityRotation
    watcher: AuthorityWatcher

    def issue(self, name: str = "web", ttl: timedelta | None = None) -> IssuedChain:
        return self.issuer.issue(
            generate_private_key().public_key(),
            SignParams(
                spiffe_id=TRUST_DOMAIN.spiffe_id(f"/ns/app/sa/{name}"), requester="test", ttl=ttl
            ),
        )

    def bundle(self) -> tuple[x509.Certificate, ...]:
        return self.issuer.trust_bundle().x509_authorities

    def verifies(self, chain: IssuedChain, *, at_offset: timedelta = timedelta(0)) -> SpiffeId:
        """Verify ``chain`` against the issuer's current bundle, now (plus an offset)."""
        return verify_svid_chain(
            chain.leaf, chain.intermediates, self.bundle(), at=self.clock.now() + at_offset
        )

    def revoker(self, index: RevocationIndex | None = None) -> Revoker:
        return Revoker(
            repository=self.repository,
            clock=self.clock,
            rotation=self.rotation,
            on_revoked=index.note_revoked if index is not None else None,
        )

    def crls(self, next_update: timedelta = timedelta(hours=1)) -> CrlPublisher:
        return CrlPublisher(
            repository=self.repository,
            key_manager=self.key_manager,
            clock=self.clock,
            next_update=next_update,
        )

    def snapshot(self) -> dict[str, Any]:
        """Everything a refused operation must leave untouched."""
        return {
            "authorities": self.repository.list_authorities(),
            "keys": self.key_manager.list_keys(),
            "audit": [e.hash for e in self.repository.list_audit(limit=10_000)],
            "certificates": self.repository.list_certificates(limit=10_000),
            "revocations": self.repository.list_revocations(),
        }


@contextmanager
def lifecycle_ca(
    tmp_path: Path, clock: ManualClock, *, policy: RotationPolicy | None = None, **config: Any
) -> Iterator[LifecycleCa]:
    ca_config = CaConfig(
        data_dir=tmp_path / "data",
        trust_domain=TRUST_DOMAIN,
        key_passphrase=b"unused",
        **config,
    )
    (tmp_path / "data").mkdir(mode=0o700, exist_ok=True)
    repository = Repository.open(f"sqlite:///{tmp_path / 'data' / 'citadel.db'}")
    key_manager = MemoryKeyManager()
    try:
        loaded = initialise_authorities(repository, key_manager, ca_config, clock)
        issuer = Issuer(
            signer=loaded.signer,
            roots=loaded.roots,
            trust_domain=TRUST_DOMAIN,
            recorder=repository,
            clock=clock,
            default_ttl=ca_config.default_ttl,
            max_ttl=ca_config.max_ttl,
        )
        rotation = AuthorityRotation(
            repository=repository,
            key_manager=key_manager,
            clock=clock,
            config=ca_config,
            policy=policy
            or RotationPolicy(
                propagation_delay=PROPAGATION, intermediate_propagation_delay=timedelta(0)
            ),
        )
        watcher = AuthorityWatcher(
            repository=repository,
            key_manager=key_manager,
            issuer=issuer,
            clock=clock,
            trust_domain=TRUST_DOMAIN,
        )
        watcher.prime()
        try:
            yield LifecycleCa(repository, key_manager, ca_config, clock, issuer, rotation, watcher)
        finally:
            issuer.close()
    finally:
        repository.close()


# --- an operator's own CA, outside Citadel (plug-in directories, upstream signing) -------


@dataclass
class OperatorCa:
    """A CA whose keys the test holds directly (it stands for the operator's PKI)."""

    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def root(
        cls, clock: ManualClock, name: str, *, ttl: timedelta = timedelta(days=3650)
    ) -> OperatorCa:
        key = generate_private_key()
        spec = CaSpec(
            trust_domain=TRUST_DOMAIN,
            common_name=f"Operator Root {name}",
            organization="Operator",
            public_key=key.public_key(),
            not_before=clock.now() - timedelta(hours=1),
            not_after=clock.now() + ttl,
        )
        return cls(ca_builder(spec, None).sign(key, hashes.SHA256()), key)

    def issue_ca(
        self,
        clock: ManualClock,
        name: str,
        *,
        public_key: object | None = None,
        ttl: timedelta = timedelta(days=365),
        path_length: int | None = 0,
        trust_domain: TrustDomain = TRUST_DOMAIN,
    ) -> OperatorCa:
        key = generate_private_key()
        spec = CaSpec(
            trust_domain=trust_domain,
            common_name=f"Operator CA {name}",
            organization="Operator",
            public_key=public_key if public_key is not None else key.public_key(),  # type: ignore[arg-type]
            not_before=clock.now() - timedelta(hours=1),
            not_after=clock.now() + ttl,
            path_length=path_length,
        )
        return OperatorCa(ca_builder(spec, self.cert).sign(self.key, hashes.SHA256()), key)

    def crl(
        self,
        clock: ManualClock,
        serials: tuple[int, ...] = (),
        *,
        ttl: timedelta = timedelta(days=1),
    ) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.cert.subject)
            .last_update(clock.now() - timedelta(minutes=1))
            .next_update(clock.now() + ttl)
        )
        for serial in serials:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(clock.now() - timedelta(minutes=1))
                .build()
            )
        return builder.sign(self.key, hashes.SHA256())


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def write_plugin_dir(
    directory: Path,
    ca: OperatorCa,
    chain: tuple[x509.Certificate, ...],
    roots: tuple[x509.Certificate, ...],
    *,
    crl: x509.CertificateRevocationList | None = None,
    skip: tuple[str, ...] = (),
) -> Path:
    """Write ca-cert.pem, ca-key.pem, cert-chain.pem (ca-cert + chain), root-cert.pem."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "ca-cert.pem": pem(ca.cert),
        "ca-key.pem": private_key_to_pkcs8_pem(ca.key),
        "cert-chain.pem": pem(ca.cert, *chain),
        "root-cert.pem": pem(*roots),
    }
    if crl is not None:
        files["ca-crl.pem"] = crl.public_bytes(Encoding.PEM)
    for name, data in files.items():
        if name not in skip:
            (directory / name).write_bytes(data)
    return directory
