"""Conversion of cached secrets into Envoy ``Secret`` resources (memoised)."""

from __future__ import annotations

from functools import lru_cache

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, secret_pb2
from google.protobuf import any_pb2

from node_agent.secrets import Secret, TlsCertificateSecret

__all__ = ["SECRET_TYPE_URL", "to_envoy_any", "to_envoy_secret"]

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
    return secret_pb2.Secret(
        name=secret.name,
        validation_context=common_pb2.CertificateValidationContext(
            trusted_ca=base_pb2.DataSource(inline_bytes=secret.trusted_ca_pem)
        ),
    )


@lru_cache(maxsize=512)
def to_envoy_any(secret: Secret) -> any_pb2.Any:
    """The packed resource; one per secret content, shared by every stream that sends it.

    Callers must not mutate the returned message.
    """
    packed = any_pb2.Any()
    packed.Pack(to_envoy_secret(secret))
    return packed
