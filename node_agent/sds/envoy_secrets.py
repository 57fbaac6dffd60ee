"""Conversion of cached secrets into Envoy ``Secret`` resources (memoised)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from google.protobuf import any_pb2

from node_agent.secrets import Secret, TlsCertificateSecret

__all__ = ["SECRET_TYPE_URL", "crls_to_pem", "to_envoy_any", "to_envoy_secret"]

SECRET_TYPE_URL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"  # noqa: S105


def to_envoy_secret(secret: Secret) -> secret_pb2.Secret:
    if isinstance(secret, TlsCertificateSecret):
        return secret_pb2.Secret(
            name=secret.name,
            tls_certificate=common_pb2.TlsCertificate(
                certificate_chain=base_pb2.DataSource(inline_bytes=secret.cert_chain_pem),
                private_key=base_pb2.DataSource(inline_bytes=secret.private_key_pem),
            ),
        )
    context = common_pb2.CertificateValidationContext(
        trusted_ca=base_pb2.DataSource(inline_bytes=secret.trusted_ca_pem)
    )
    if secret.crls_der:
        context.crl.inline_bytes = crls_to_pem(secret.crls_der)
        context.only_verify_leaf_cert_crl = secret.crl_leaf_only
    return secret_pb2.Secret(name=secret.name, validation_context=context)


def crls_to_pem(crls_der: Sequence[bytes]) -> bytes:
    """Concatenated PEM CRLs (what ``validation_context.crl`` takes)."""
    return b"".join(
        x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM) for der in crls_der
    )


@lru_cache(maxsize=512)
def to_envoy_any(secret: Secret) -> any_pb2.Any:
    """The packed resource; one per secret content, shared by every stream that sends it.

    Callers must not mutate the returned message.
    """
    packed = any_pb2.Any()
    packed.Pack(to_envoy_secret(secret))
    return packed
