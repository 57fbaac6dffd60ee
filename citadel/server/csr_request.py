"""The fields of an Istio CSR request, read and checked without trusting any of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from citadel._proto import istio_ca_pb2
from citadel.ca.errors import TtlError
from citadel.identity.csr import MAX_CSR_BYTES
from citadel.server.errors import InvalidRequestError, RequestTooLargeError

__all__ = [
    "CERT_SIGNER_KEY",
    "IMPERSONATED_IDENTITY_KEY",
    "MAX_VALIDITY",
    "CsrRequest",
]

IMPERSONATED_IDENTITY_KEY = "ImpersonatedIdentity"
CERT_SIGNER_KEY = "CertSigner"
MAX_VALIDITY = timedelta(days=36500)
_MAX_METADATA_VALUE = 2048


def _struct_strings(struct: Any) -> dict[str, str | None]:
    """A Struct's fields: string values as they are, any other JSON type as None."""
    result: dict[str, str | None] = {}
    for key, value in struct.fields.items():
        result[str(key)] = (
            str(value.string_value) if value.WhichOneof("kind") == "string_value" else None
        )
    return result


def _string_field(metadata: Mapping[str, str | None], key: str) -> str | None:
    if key not in metadata:
        return None
    text = metadata[key]
    if text is None:
        raise InvalidRequestError(f"metadata {key} must be a string")
    if len(text) > _MAX_METADATA_VALUE:
        raise InvalidRequestError(f"metadata {key} is too long")
    return text


@dataclass(frozen=True, kw_only=True, slots=True)
class CsrRequest:
    """A request as received; each accessor checks the field it returns.

    Attributes:
        csr_pem: the PEM CSR text.
        validity_seconds: requested lifetime; 0 means the CA's default.
        metadata: the string fields of the request's ``metadata`` Struct (other JSON
            types are kept as None, so that asking for them is an error).
    """

    csr_pem: str
    validity_seconds: int = 0
    metadata: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, request: istio_ca_pb2.IstioCertificateRequest) -> CsrRequest:
        return cls(
            csr_pem=str(request.csr),
            validity_seconds=int(request.validity_duration),
            metadata=_struct_strings(request.metadata),
        )

    def checked_csr(self) -> bytes:
        """The CSR bytes, at most 64 KiB.

        Raises:
            RequestTooLargeError: larger than :data:`MAX_CSR_BYTES`.
        """
        raw = self.csr_pem.encode("utf-8", errors="replace")
        if len(raw) > MAX_CSR_BYTES:
            raise RequestTooLargeError(f"CSR is larger than {MAX_CSR_BYTES} bytes")
        return raw

    def ttl(self) -> timedelta | None:
        """The requested lifetime, None for the default.

        Raises:
            TtlError: negative, or longer than any CA could grant.
        """
        seconds = self.validity_seconds
        if seconds == 0:
            return None
        if seconds < 0:
            raise TtlError(f"requested TTL {seconds}s is negative")
        if seconds > MAX_VALIDITY.total_seconds():
            raise TtlError(f"requested TTL {seconds}s is beyond any maximum")
        return timedelta(seconds=seconds)

    def impersonated_identity(self) -> str | None:
        """``metadata.ImpersonatedIdentity``, or None when absent or empty.

        Raises:
            InvalidRequestError: present but not a string, or too long.
        """
        return _string_field(self.metadata, IMPERSONATED_IDENTITY_KEY) or None

    def cert_signer(self) -> str | None:
        return _string_field(self.metadata, CERT_SIGNER_KEY) or None
