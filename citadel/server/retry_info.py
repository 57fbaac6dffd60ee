"""Retry hints for RESOURCE_EXHAUSTED answers: ``retry-after`` seconds in the trailing
metadata, and a ``google.rpc.RetryInfo`` in ``grpc-status-details-bin`` when the
googleapis common protos are importable."""

from __future__ import annotations

import importlib
import math
from datetime import timedelta
from typing import Any

import grpc

__all__ = ["RETRY_AFTER_KEY", "STATUS_DETAILS_KEY", "retry_trailers"]

RETRY_AFTER_KEY = "retry-after"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _load(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover - googleapis-common-protos is optional
        return None


any_pb2 = _load("google.protobuf.any_pb2")
duration_pb2 = _load("google.protobuf.duration_pb2")
error_details_pb2 = _load("google.rpc.error_details_pb2")
status_pb2 = _load("google.rpc.status_pb2")


def retry_trailers(
    code: grpc.StatusCode, message: str, retry_after: timedelta
) -> tuple[tuple[str, str | bytes], ...]:
    """Trailing metadata carrying the hint (the status in the details matches the call's)."""
    seconds = max(1, math.ceil(retry_after.total_seconds()))
    trailers: list[tuple[str, str | bytes]] = [(RETRY_AFTER_KEY, str(seconds))]
    if status_pb2 is not None and error_details_pb2 is not None:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=seconds)))
        status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
        trailers.append((STATUS_DETAILS_KEY, status.SerializeToString()))
    return tuple(trailers)
