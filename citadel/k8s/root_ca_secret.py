"""Keep a self-signed root CA (certificate and key) in a Secret instead of the database.

The Secret (``istio-ca-secret`` by default, type ``citadel.io/ca-root``) holds ``ca-cert.pem``
and ``ca-key.pem`` (unencrypted PKCS#8: the Secret, its RBAC and etcd encryption protect it).
Several replicas may start at once: :meth:`RootCaSecretStore.ensure` lets exactly one of them
create the root and makes the others load the winner's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from citadel.identity.errors import InvalidCertificateError, InvalidKeyError
from citadel.identity.keys import (
    PrivateKey,
    load_private_key_pem,
    private_key_to_pkcs8_pem,
    public_keys_equal,
)
from citadel.identity.pem import certificate_fingerprint, load_certificates_pem, serial_hex
from citadel.identity.x509_svid import validate_signing_certificate
from citadel.k8s.api_errors import (
    TRANSPORT_ERRORS,
    is_conflict,
    is_not_found,
    translate_api_error,
)
from citadel.k8s.controller_errors import CaSecretConflictError, CaSecretError
from citadel.k8s.secret_data import decode_secret_data, encode_secret_data, require_key

__all__ = [
    "ROOT_CA_SECRET_NAME",
    "ROOT_CA_SECRET_TYPE",
    "RootCaSecretStore",
    "StoredRootCa",
    "parse_root_ca",
]

_log = logging.getLogger(__name__)

ROOT_CA_SECRET_NAME = "istio-ca-secret"  # noqa: S105 (a Secret name)
ROOT_CA_SECRET_TYPE = "citadel.io/ca-root"  # noqa: S105 (a Secret type)
CA_CERT_KEY = "ca-cert.pem"
CA_KEY_KEY = "ca-key.pem"
MANAGED_BY_LABEL = ("app.kubernetes.io/managed-by", "citadel")


@dataclass(frozen=True, kw_only=True)
class StoredRootCa:
    certificate: x509.Certificate
    key: PrivateKey = field(repr=False)
    resource_version: str | None = None

    def describe(self) -> str:
        return (
            f"root serial {serial_hex(self.certificate)} "
            f"sha256 {certificate_fingerprint(self.certificate)[:16]}"
        )


def parse_root_ca(
    data: dict[str, bytes], *, what: str, resource_version: str | None = None
) -> StoredRootCa:
    """Parse and check the decoded entries of a root CA Secret.

    Raises:
        CaSecretMissingKeyError: ``ca-cert.pem`` or ``ca-key.pem`` is absent or empty.
        CaSecretError: malformed, mismatched, or not a CA certificate.
    """
    cert_pem = require_key(data, CA_CERT_KEY, what=what)
    key_pem = require_key(data, CA_KEY_KEY, what=what)
    try:
        certs = load_certificates_pem(cert_pem, what=CA_CERT_KEY)
    except InvalidCertificateError as exc:
        raise CaSecretError(f"Secret {what}: {exc.message}") from exc
    if len(certs) != 1:
        raise CaSecretError(f"Secret {what}: {CA_CERT_KEY} must hold exactly one certificate")
    try:
        key = load_private_key_pem(key_pem)
    except InvalidKeyError as exc:
        raise CaSecretError(f"Secret {what}: {CA_KEY_KEY}: {exc.message}") from exc
    if not public_keys_equal(key, certs[0].public_key()):  # type: ignore[arg-type]
        raise CaSecretError(f"Secret {what}: {CA_KEY_KEY} does not match {CA_CERT_KEY}")
    try:
        validate_signing_certificate(certs[0])
    except InvalidCertificateError as exc:
        raise CaSecretError(f"Secret {what}: {CA_CERT_KEY}: {exc.message}") from exc
    return StoredRootCa(certificate=certs[0], key=key, resource_version=resource_version)


class RootCaSecretStore:
    """Load, create (once, race-safe) and replace the root CA Secret.

    RBAC: ``get`` and ``update`` on this one Secret name, ``create`` on Secrets (create cannot
    be restricted by name) in the CA's namespace.
    """

    def __init__(
        self,
        core: k8s.CoreV1Api,
        *,
        namespace: str,
        name: str = ROOT_CA_SECRET_NAME,
        request_timeout: timedelta = timedelta(seconds=10),
    ) -> None:
        self._core = core
        self._namespace = namespace
        self._name = name
        self._timeout = request_timeout.total_seconds()

    @property
    def secret_name(self) -> str:
        return f"{self._namespace}/{self._name}"

    def load(self) -> StoredRootCa | None:
        """The stored root, or None when the Secret does not exist.

        Raises:
            CaSecretError: the Secret exists but its content is unusable.
            KubeApiUnavailableError / KubeApiRejectedError: the API server failed or refused.
        """
        try:
            secret = self._core.read_namespaced_secret(
                self._name, self._namespace, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if is_not_found(exc):
                return None
            raise translate_api_error(exc, f"read Secret {self.secret_name}") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate_api_error(exc, f"read Secret {self.secret_name}") from exc
        metadata = secret.metadata or k8s.V1ObjectMeta()
        data = decode_secret_data(secret, what=self.secret_name)
        return parse_root_ca(
            data, what=self.secret_name, resource_version=metadata.resource_version
        )

    def create(self, certificate: x509.Certificate, key: PrivateKey) -> StoredRootCa:
        """Store a new root.

        Raises:
            CaSecretConflictError: the Secret already exists (another replica created it).
            KubeApiUnavailableError / KubeApiRejectedError: the API server failed or refused.
        """
        body = self._body(certificate, key, resource_version=None)
        try:
            created = self._core.create_namespaced_secret(
                self._namespace, body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if is_conflict(exc):
                raise CaSecretConflictError(f"Secret {self.secret_name} already exists") from exc
            raise translate_api_error(exc, f"create Secret {self.secret_name}") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate_api_error(exc, f"create Secret {self.secret_name}") from exc
        stored = StoredRootCa(
            certificate=certificate, key=key, resource_version=_resource_version(created)
        )
        _log.info("stored %s in Secret %s", stored.describe(), self.secret_name)
        return stored

    def replace(
        self, certificate: x509.Certificate, key: PrivateKey, *, resource_version: str
    ) -> StoredRootCa:
        """Replace the stored root, only if it is still at ``resource_version``.

        Raises:
            CaSecretConflictError: someone changed (or deleted) the Secret since it was read.
            KubeApiUnavailableError / KubeApiRejectedError: the API server failed or refused.
        """
        if not resource_version:
            raise ValueError("replace needs the resourceVersion that was read")
        body = self._body(certificate, key, resource_version=resource_version)
        try:
            replaced = self._core.replace_namespaced_secret(
                self._name, self._namespace, body, _request_timeout=self._timeout
            )
        except ApiException as exc:
            if is_conflict(exc) or is_not_found(exc):
                raise CaSecretConflictError(
                    f"Secret {self.secret_name} changed since it was read"
                ) from exc
            raise translate_api_error(exc, f"update Secret {self.secret_name}") from exc
        except TRANSPORT_ERRORS as exc:
            raise translate_api_error(exc, f"update Secret {self.secret_name}") from exc
        stored = StoredRootCa(
            certificate=certificate, key=key, resource_version=_resource_version(replaced)
        )
        _log.info("replaced the root in Secret %s: %s", self.secret_name, stored.describe())
        return stored

    def ensure(self, generate: Callable[[], tuple[x509.Certificate, PrivateKey]]) -> StoredRootCa:
        """Load the stored root, or create one with ``generate()``; the first writer wins.

        Raises:
            CaSecretError: the stored Secret is unusable (it is never overwritten).
            KubeApiUnavailableError / KubeApiRejectedError: the API server failed or refused.
        """
        existing = self.load()
        if existing is not None:
            return existing
        certificate, key = generate()
        try:
            return self.create(certificate, key)
        except CaSecretConflictError:
            winner = self.load()
            if winner is None:  # created and deleted in between: extremely unlikely
                raise
            _log.info("another replica created the root first: %s", winner.describe())
            return winner

    def _body(
        self, certificate: x509.Certificate, key: PrivateKey, *, resource_version: str | None
    ) -> k8s.V1Secret:
        if not public_keys_equal(key, certificate.public_key()):  # type: ignore[arg-type]
            raise ValueError("the key does not match the certificate")
        values = {
            CA_CERT_KEY: certificate.public_bytes(serialization.Encoding.PEM),
            CA_KEY_KEY: private_key_to_pkcs8_pem(key),
        }
        label, value = MANAGED_BY_LABEL
        return k8s.V1Secret(
            api_version="v1",
            kind="Secret",
            type=ROOT_CA_SECRET_TYPE,
            metadata=k8s.V1ObjectMeta(
                name=self._name,
                namespace=self._namespace,
                labels={label: value},
                resource_version=resource_version,
            ),
            data=encode_secret_data(values),
        )


def _resource_version(secret: object) -> str | None:
    metadata = getattr(secret, "metadata", None)
    version = getattr(metadata, "resource_version", None)
    return str(version) if version else None
