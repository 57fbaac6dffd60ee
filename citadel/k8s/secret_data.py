"""Decode the ``data`` of a Secret model (base64 values) with bounds and named errors."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping

from kubernetes import client as k8s

from citadel.k8s.controller_errors import CaSecretError, CaSecretMissingKeyError

__all__ = ["MAX_SECRET_VALUE_BYTES", "decode_secret_data", "encode_secret_data", "require_key"]

MAX_SECRET_VALUE_BYTES = 1024 * 1024


def decode_secret_data(secret: k8s.V1Secret, *, what: str) -> dict[str, bytes]:
    """The Secret's ``data`` decoded from base64 (``stringData`` is write-only in the API).

    Raises:
        CaSecretError: a value is not base64 or is too large (the message names the key only).
    """
    decoded: dict[str, bytes] = {}
    for key, value in (secret.data or {}).items():
        if value is None:
            decoded[key] = b""
            continue
        if len(value) > (MAX_SECRET_VALUE_BYTES * 4) // 3 + 4:
            raise CaSecretError(f"Secret {what}: entry {key!r} is too large")
        try:
            decoded[key] = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CaSecretError(f"Secret {what}: entry {key!r} is not valid base64") from exc
    return decoded


def encode_secret_data(values: Mapping[str, bytes]) -> dict[str, bytes | str]:
    """Base64 values for a Secret's ``data`` (the client sends them as given)."""
    return {key: base64.b64encode(value).decode("ascii") for key, value in values.items()}


def require_key(data: Mapping[str, bytes], key: str, *, what: str) -> bytes:
    """The value of a required entry.

    Raises:
        CaSecretMissingKeyError: the entry is absent or empty; the error names it.
    """
    value = data.get(key)
    if not value or not value.strip():
        raise CaSecretMissingKeyError(secret=what, key=key)
    return value
