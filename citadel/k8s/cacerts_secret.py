"""Read the plug-in CA from the ``cacerts`` Secret.

The Secret carries the files of Istio's plug-in CA directory: ``ca-cert.pem`` (the signing
certificate), ``ca-key.pem`` (its key), ``cert-chain.pem`` (the chain from ``ca-cert`` up to the
root), ``root-cert.pem`` (the trust anchors) and optionally ``ca-crl.pem``. Parsing is a pure
function of the decoded entries, so every defect has a table test. Key material never reaches
a message, a log line or a ``repr``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography import x509
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from citadel.identity.errors import InvalidCertificateError, InvalidKeyError
from citadel.identity.keys import PrivateKey, load_private_key_pem, public_keys_equal
from citadel.identity.pem import certificate_fingerprint, load_certificates_pem, serial_hex
from citadel.identity.x509_svid import validate_signing_certificate
from citadel.k8s.api_errors import TRANSPORT_ERRORS, is_not_found, translate_api_error
from citadel.k8s.controller_errors import CaSecretError, CaSecretNotFoundError
from citadel.k8s.secret_data import decode_secret_data, require_key

__all__ = [
    "CACERTS_SECRET_NAME",
    "CA_CERT_KEY",
    "CA_CRL_KEY",
    "CA_KEY_KEY",
    "CERT_CHAIN_KEY",
    "ROOT_CERT_KEY",
    "CaCertsSecretReader",
    "PluggedCaMaterial",
    "parse_plugged_ca",
]

_log = logging.getLogger(__name__)

CACERTS_SECRET_NAME = "cacerts"  # noqa: S105 (a Secret name, not a password)
CA_CERT_KEY = "ca-cert.pem"
CA_KEY_KEY = "ca-key.pem"
CERT_CHAIN_KEY = "cert-chain.pem"
ROOT_CERT_KEY = "root-cert.pem"
CA_CRL_KEY = "ca-crl.pem"
REQUIRED_KEYS = (CA_CERT_KEY, CA_KEY_KEY, CERT_CHAIN_KEY, ROOT_CERT_KEY)


@dataclass(frozen=True, kw_only=True)
class PluggedCaMaterial:
    """A plug-in CA as read from the Secret.

    Attributes:
        ca_cert: the signing certificate (CA=true, keyCertSign).
        ca_key: its private key (hand it to a key manager; never log it).
        cert_chain: ``cert-chain.pem`` as given (from the signing certificate towards the root).
        roots: the trust anchors from ``root-cert.pem``.
        crl: the CRL from ``ca-crl.pem``, if present.
        resource_version: of the Secret read, to notice changes.
    """

    ca_cert: x509.Certificate
    ca_key: PrivateKey = field(repr=False)
    cert_chain: tuple[x509.Certificate, ...]
    roots: tuple[x509.Certificate, ...]
    crl: x509.CertificateRevocationList | None = None
    resource_version: str | None = None

    def describe(self) -> str:
        """A log-safe summary: serial and fingerprints, never key material."""
        return (
            f"ca-cert serial {serial_hex(self.ca_cert)} "
            f"sha256 {certificate_fingerprint(self.ca_cert)[:16]}, "
            f"{len(self.cert_chain)} chain cert(s), {len(self.roots)} root(s), "
            f"crl {'yes' if self.crl is not None else 'no'}"
        )


def _certificates(data: Mapping[str, bytes], key: str, what: str) -> list[x509.Certificate]:
    value = require_key(data, key, what=what)
    try:
        return load_certificates_pem(value, what=key)
    except InvalidCertificateError as exc:
        raise CaSecretError(f"Secret {what}: {exc.message}") from exc


def parse_plugged_ca(
    data: Mapping[str, bytes],
    *,
    what: str = CACERTS_SECRET_NAME,
    resource_version: str | None = None,
) -> PluggedCaMaterial:
    """Parse and check the decoded entries of a ``cacerts`` Secret.

    Raises:
        CaSecretMissingKeyError: a required entry is absent or empty (names the entry).
        CaSecretError: an entry is malformed, the key does not match ``ca-cert.pem``, or
            ``ca-cert.pem`` cannot sign.
    """
    for key in REQUIRED_KEYS:  # report the first missing entry before any parsing
        require_key(data, key, what=what)
    ca_certs = _certificates(data, CA_CERT_KEY, what)
    if len(ca_certs) != 1:
        raise CaSecretError(f"Secret {what}: {CA_CERT_KEY} must hold exactly one certificate")
    ca_cert = ca_certs[0]
    chain = _certificates(data, CERT_CHAIN_KEY, what)
    roots = _certificates(data, ROOT_CERT_KEY, what)
    try:
        ca_key = load_private_key_pem(require_key(data, CA_KEY_KEY, what=what))
    except InvalidKeyError as exc:
        raise CaSecretError(f"Secret {what}: {CA_KEY_KEY}: {exc.message}") from exc
    if not public_keys_equal(ca_key, ca_cert.public_key()):  # type: ignore[arg-type]
        raise CaSecretError(f"Secret {what}: {CA_KEY_KEY} does not match {CA_CERT_KEY}")
    try:
        validate_signing_certificate(ca_cert)
    except InvalidCertificateError as exc:
        raise CaSecretError(f"Secret {what}: {CA_CERT_KEY}: {exc.message}") from exc
    crl: x509.CertificateRevocationList | None = None
    crl_pem = data.get(CA_CRL_KEY)
    if crl_pem and crl_pem.strip():
        try:
            crl = x509.load_pem_x509_crl(crl_pem)
        except ValueError as exc:
            raise CaSecretError(f"Secret {what}: {CA_CRL_KEY} is not a PEM CRL") from exc
    return PluggedCaMaterial(
        ca_cert=ca_cert,
        ca_key=ca_key,
        cert_chain=tuple(chain),
        roots=tuple(roots),
        crl=crl,
        resource_version=resource_version,
    )


class CaCertsSecretReader:
    """Reads and checks the plug-in CA Secret (``get`` on one Secret is all it needs)."""

    def __init__(
        self,
        core: k8s.CoreV1Api,
        *,
        namespace: str,
        name: str = CACERTS_SECRET_NAME,
        request_timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self._core = core
        self._namespace = namespace
        self._name = name
        self._timeout = request_timeout.total_seconds()

    @property
    def secret_name(self) -> str:
        return f"{self._namespace}/{self._name}"

    def read(self) -> PluggedCaMaterial:
        """Read the Secret and return the checked material.

        Raises:
            CaSecretNotFoundError: the Secret does not exist.
            CaSecretMissingKeyError / CaSecretError: its content is unusable.
            KubeApiUnavailableError / KubeApiRejectedError: the API server failed or refused.
        """
        try:
            secret = self._core.read_namespaced_secret(
                self._name, self._namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if is_not_found(exc):
                raise CaSecretNotFoundError(f"Secret {self.secret_name} does not exist") from exc
            raise translate_api_error(exc, f"read Secret {self.secret_name}") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate_api_error(exc, f"read Secret {self.secret_name}") from exc
        metadata = secret.metadata or k8s.V1ObjectMeta()
        data = decode_secret_data(secret, what=self.secret_name)
        material = parse_plugged_ca(
            data, what=self.secret_name, resource_version=metadata.resource_version
        )
        _log.info("loaded plug-in CA from Secret %s: %s", self.secret_name, material.describe())
        return material
