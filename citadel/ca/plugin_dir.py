"""Reading and checking a plug-in CA directory (the operator's own CA for Citadel to sign with).

Files (the layout Istio uses):

* ``ca-cert.pem``: the CA certificate Citadel signs workload certificates with;
* ``ca-key.pem``: its private key (PEM, PKCS#8 or traditional, unencrypted);
* ``cert-chain.pem``: the chain above ``ca-cert.pem`` (it may start with ``ca-cert.pem`` and
  may end with the root);
* ``root-cert.pem``: the root(s) workloads should trust, the whole trust bundle;
* ``ca-crl.pem`` (optional): CRLs to publish alongside Citadel's own.

:func:`load_plugin_dir` checks everything before anything is installed: all required files
present, each parsable, the key matches ``ca-cert.pem``, which is a signing certificate of
this trust domain valid now, and which chains to a root of ``root-cert.pem`` (see
:mod:`citadel.ca.ca_chain` for how), every root self-signed, and each CRL signed by a
certificate of the chain and not expired. Any failure is a :class:`PluginCaError` naming the
file and the problem; the running CA keeps its current keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm

from citadel.ca.authority import is_self_signed
from citadel.ca.authority_errors import PluginCaError
from citadel.ca.ca_chain import check_ca_certificate, verify_ca_chain
from citadel.identity.errors import (
    ChainVerificationError,
    InvalidCertificateError,
    InvalidKeyError,
)
from citadel.identity.keys import PrivateKey, load_private_key_pem, public_keys_equal
from citadel.identity.pem import MAX_PEM_BYTES, certificate_fingerprint, load_certificates_pem
from citadel.identity.spiffe_id import TrustDomain

__all__ = [
    "CA_CERT",
    "CA_CRL",
    "CA_KEY",
    "CERT_CHAIN",
    "REQUIRED_FILES",
    "ROOT_CERT",
    "PluginCaMaterial",
    "load_plugin_dir",
]

CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"
CERT_CHAIN = "cert-chain.pem"
ROOT_CERT = "root-cert.pem"
CA_CRL = "ca-crl.pem"
REQUIRED_FILES = (CA_CERT, CA_KEY, CERT_CHAIN, ROOT_CERT)
_PEM_CRL = re.compile(rb"-----BEGIN X509 CRL-----\r?\n.+?\r?\n-----END X509 CRL-----", re.DOTALL)


@dataclass(frozen=True)
class PluginCaMaterial:
    """A checked plug-in CA.

    Attributes:
        path: the verified chain, ``ca-cert.pem`` first and its root last.
        roots: every root of ``root-cert.pem`` (the trust bundle to serve).
    """

    ca_cert: x509.Certificate
    ca_key: PrivateKey = field(repr=False)
    path: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]
    crls: tuple[x509.CertificateRevocationList, ...] = ()

    @property
    def fingerprint(self) -> str:
        return certificate_fingerprint(self.ca_cert)

    @property
    def root(self) -> x509.Certificate:
        return self.path[-1]


def _read(directory: Path, name: str) -> bytes:
    path = directory / name
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise PluginCaError(f"{name} cannot be read: {exc.strerror or exc}") from exc
    if len(data) > MAX_PEM_BYTES:
        raise PluginCaError(f"{name} is larger than {MAX_PEM_BYTES} bytes")
    return data


def _certificates(directory: Path, name: str) -> list[x509.Certificate]:
    try:
        return load_certificates_pem(_read(directory, name), what=name)
    except InvalidCertificateError as exc:
        raise PluginCaError(exc.message) from exc


def _crls(data: bytes) -> tuple[x509.CertificateRevocationList, ...]:
    blocks = _PEM_CRL.findall(data)
    if not blocks:
        raise PluginCaError(f"{CA_CRL} holds no CRL")
    crls = []
    for index, block in enumerate(blocks):
        try:
            crls.append(x509.load_pem_x509_crl(block))
        except ValueError as exc:
            raise PluginCaError(f"{CA_CRL}: CRL #{index + 1} is malformed") from exc
    return tuple(crls)


def _check_crls(
    crls: tuple[x509.CertificateRevocationList, ...],
    signers: tuple[x509.Certificate, ...],
    now: datetime,
) -> None:
    for index, crl in enumerate(crls):
        issuers = [c for c in signers if c.subject == crl.issuer]
        try:
            signed = any(crl.is_signature_valid(c.public_key()) for c in issuers)  # type: ignore[arg-type]
        except (TypeError, ValueError, UnsupportedAlgorithm):
            signed = False
        if not signed:
            raise PluginCaError(
                f"{CA_CRL}: CRL #{index + 1} is not signed by a certificate of the chain"
            )
        if crl.next_update_utc is not None and crl.next_update_utc <= now:
            raise PluginCaError(
                f"{CA_CRL}: CRL #{index + 1} expired at {crl.next_update_utc:%Y-%m-%d %H:%M}Z"
            )


def load_plugin_dir(
    directory: Path, *, trust_domain: TrustDomain, now: datetime
) -> PluginCaMaterial:
    """Read and check a plug-in CA directory.

    Raises:
        PluginCaError: a required file is missing, or the set is unreadable or inconsistent.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise PluginCaError(f"plug-in CA directory {directory} does not exist")
    missing = [name for name in REQUIRED_FILES if not (directory / name).is_file()]
    if missing:
        raise PluginCaError(
            f"plug-in CA directory {directory} is incomplete: {', '.join(missing)} missing "
            f"(it needs {', '.join(REQUIRED_FILES)})"
        )
    certs = _certificates(directory, CA_CERT)
    if len(certs) != 1:
        raise PluginCaError(f"{CA_CERT} must hold exactly one certificate, not {len(certs)}")
    ca_cert = certs[0]
    try:
        ca_key = load_private_key_pem(_read(directory, CA_KEY))
    except InvalidKeyError as exc:
        raise PluginCaError(f"{CA_KEY}: {exc.message}") from exc
    if not public_keys_equal(ca_key, ca_cert.public_key()):  # type: ignore[arg-type]
        raise PluginCaError(f"{CA_KEY} does not match {CA_CERT}")
    try:
        check_ca_certificate(ca_cert, trust_domain, now)
    except InvalidCertificateError as exc:
        raise PluginCaError(f"{CA_CERT}: {exc.message}") from exc
    ca_fingerprint = certificate_fingerprint(ca_cert)
    chain = [
        c
        for c in _certificates(directory, CERT_CHAIN)
        if certificate_fingerprint(c) != ca_fingerprint
    ]
    roots = _certificates(directory, ROOT_CERT)
    for index, root in enumerate(roots):
        if not is_self_signed(root):
            raise PluginCaError(f"{ROOT_CERT}: certificate #{index + 1} is not a self-signed root")
    root_prints = {certificate_fingerprint(r) for r in roots}
    try:
        path = verify_ca_chain(
            ca_cert,
            [c for c in chain if certificate_fingerprint(c) not in root_prints],
            roots,
            at=now,
        )
    except ChainVerificationError as exc:
        raise PluginCaError(
            f"{CA_CERT} with {CERT_CHAIN} does not chain to {ROOT_CERT}: {exc.message}"
        ) from exc
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    if (directory / CA_CRL).is_file():
        crls = _crls(_read(directory, CA_CRL))
        _check_crls(crls, (*path, *roots), now)
    return PluginCaMaterial(ca_cert, ca_key, path, tuple(roots), crls)
