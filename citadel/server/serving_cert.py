"""The server's own TLS certificate: issued by our CA (through the Issuer, so it is audited)
and rotated before it expires without restarting the server.

gRPC asks the credentials' *fetcher* for a new configuration at every new handshake; the
server's maintenance loop calls :meth:`ServingCertificate.refresh_if_due`, which renews the
certificate at ``refresh_fraction`` of its life (and when the
CA's roots change), and each fetcher hands the new configuration out once. Existing
connections keep the certificate they were set up with.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import grpc

from citadel.ca.issuer import IssuedChain, SignParams
from citadel.errors import CitadelError
from citadel.identity.bundle import TrustBundle
from citadel.identity.clock import Clock
from citadel.identity.keys import (
    KeyType,
    PublicKey,
    generate_private_key,
    private_key_to_pkcs8_pem,
)
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.server.errors import ServingCertificateError

__all__ = [
    "SERVING_SERVICE_ACCOUNT_PATH",
    "ServingCertificate",
    "ServingIdentity",
    "ServingMaterial",
    "rotation_due",
]

_log = logging.getLogger(__name__)
SERVING_SERVICE_ACCOUNT_PATH = "/ns/citadel-system/sa/citadel"
REQUESTER = "server:serving-certificate"


def rotation_due(
    *, issued_at: datetime, not_after: datetime, now: datetime, refresh_fraction: float
) -> bool:
    """True once ``refresh_fraction`` of the certificate's useful life has passed.

    The life is counted from the moment of issuance, not from NotBefore (which the CA
    backdates for clock skew), so a short-lived certificate is not renewed at once.
    """
    if not 0.0 < refresh_fraction < 1.0:
        raise ValueError("refresh_fraction must be between 0 and 1")
    return now >= issued_at + (not_after - issued_at) * refresh_fraction


class ServingIssuer(Protocol):
    def issue(self, public_key: PublicKey, params: SignParams) -> IssuedChain: ...

    def trust_bundle(self) -> TrustBundle: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingIdentity:
    """What the serving certificate says: the CA's SPIFFE ID and its DNS names."""

    spiffe_id: SpiffeId
    dns_names: tuple[str, ...] = ("localhost",)
    ttl: timedelta = timedelta(hours=24)
    key_type: KeyType = KeyType.EC_P256

    @classmethod
    def for_trust_domain(cls, trust_domain: TrustDomain, **kwargs: object) -> ServingIdentity:
        return cls(
            spiffe_id=trust_domain.spiffe_id(SERVING_SERVICE_ACCOUNT_PATH),
            **kwargs,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class ServingMaterial:
    """One generation of the serving credentials (the key stays in this process)."""

    version: int
    key_pem: bytes = field(repr=False)
    chain_pem: bytes
    roots_pem: bytes
    serial_hex: str
    issued_at: datetime
    not_after: datetime
    roots_fingerprints: frozenset[str]

    def certificate_configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.key_pem, self.chain_pem)], root_certificates=self.roots_pem
        )


class ServingCertificate:
    """Issues, holds and renews the server's TLS certificate. Thread-safe."""

    def __init__(
        self,
        *,
        issuer: ServingIssuer,
        identity: ServingIdentity,
        clock: Clock,
        refresh_fraction: float = 0.5,
        on_renewed: Callable[[ServingMaterial], None] | None = None,
    ) -> None:
        if not 0.0 < refresh_fraction < 1.0:
            raise ValueError("refresh_fraction must be between 0 and 1")
        self._issuer = issuer
        self._identity = identity
        self._clock = clock
        self._refresh_fraction = refresh_fraction
        self._on_renewed = on_renewed
        self._lock = threading.Lock()
        self._material: ServingMaterial | None = None

    # --- issuing ---------------------------------------------------------------------------
    def _issue(self, version: int) -> ServingMaterial:
        key = generate_private_key(self._identity.key_type)
        issued_at = self._clock.now()
        params = SignParams(
            spiffe_id=self._identity.spiffe_id,
            ttl=self._identity.ttl,
            requester=REQUESTER,
            metadata={"purpose": "serving"},
            dns_names=self._identity.dns_names,
        )
        try:
            chain = self._issuer.issue(key.public_key(), params)
        except CitadelError as exc:
            raise ServingCertificateError(
                f"cannot issue the serving certificate ({exc.kind}): {exc.message}"
            ) from exc
        bundle = self._issuer.trust_bundle()
        material = ServingMaterial(
            version=version,
            key_pem=private_key_to_pkcs8_pem(key),
            chain_pem="".join(chain.cert_chain_pem()[:-1]).encode("ascii"),
            roots_pem=bundle.to_pem().encode("ascii"),
            serial_hex=chain.serial_hex,
            issued_at=issued_at,
            not_after=chain.leaf.not_valid_after_utc,
            roots_fingerprints=bundle.fingerprints(),
        )
        _log.info(
            "serving certificate serial %s for %s (DNS %s) valid until %s",
            material.serial_hex,
            self._identity.spiffe_id,
            ",".join(self._identity.dns_names) or "-",
            material.not_after.isoformat(),
        )
        if self._on_renewed is not None:
            self._on_renewed(material)
        return material

    def current(self) -> ServingMaterial:
        """The current material, issuing the first one on demand.

        Raises:
            ServingCertificateError: the first certificate cannot be issued.
        """
        material = self._material
        if material is not None:
            return material
        with self._lock:
            if self._material is None:
                self._material = self._issue(1)
            return self._material

    def renewal_due(self) -> bool:
        material = self.current()
        if rotation_due(
            issued_at=material.issued_at,
            not_after=material.not_after,
            now=self._clock.now(),
            refresh_fraction=self._refresh_fraction,
        ):
            return True
        return self._issuer.trust_bundle().fingerprints() != material.roots_fingerprints

    def refresh_if_due(self) -> bool:
        """Renew when due (lifetime fraction passed, or the CA's roots changed).

        Returns True when a new certificate was issued.

        Raises:
            ServingCertificateError: renewal was due and failed (the old one stays in use).
        """
        if not self.renewal_due():
            return False
        self.renew()
        return True

    def renew(self) -> ServingMaterial:
        """Issue a new certificate now (after a rotation: sign with the new authority, so
        the serving chain keeps verifying once the old root leaves the bundle).

        Raises:
            ServingCertificateError: the certificate cannot be issued (the old one stays).
        """
        with self._lock:
            current = self.current()
            self._material = self._issue(current.version + 1)
            return self._material

    # --- gRPC credentials -------------------------------------------------------------------
    def server_credentials(self, *, require_client_auth: bool) -> grpc.ServerCredentials:
        """Dynamic TLS credentials that pick up every renewal at the next handshake.

        With ``require_client_auth`` clients must present a certificate that chains to the
        CA's roots (mTLS listener); without it no client certificate is requested.
        """
        initial = self.current()
        served = [initial.version]

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            material = self._material
            if material is None or material.version == served[0]:
                return None
            served[0] = material.version
            return material.certificate_configuration()

        # gRPC documents None as "no change"; the stubs do not say so.
        return grpc.dynamic_ssl_server_credentials(
            initial.certificate_configuration(),
            fetch,  # type: ignore[arg-type]
            require_client_authentication=require_client_auth,
        )
