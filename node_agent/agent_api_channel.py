"""One mTLS channel to the CA's agent API (``citadel.agent.v1.AgentService``).

The agent authenticates with its own certificate and trusts the CA with the roots it
trusts now. The channel (HTTP/2, so a call costs no handshake) is kept and replaced when
that certificate or those roots change. Failures become the agent's typed CA errors.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc

from citadel._proto import citadel_agent_pb2_grpc as pb_grpc
from node_agent.errors import CaRejectedError, CaUnreachableError

__all__ = [
    "MAX_DETAIL",
    "AgentApiChannel",
    "AgentApiEndpoint",
    "MtlsMaterial",
    "classify_rpc_error",
]

_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_DETAIL = 200


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentApiEndpoint:
    """Where the CA's agent API is: its mTLS listener."""

    address: str
    server_name: str | None = None
    timeout: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("agent API address is empty")
        if self.timeout <= timedelta(0):
            raise ValueError("agent API timeout must be positive")


@dataclass(frozen=True, kw_only=True, slots=True)
class MtlsMaterial:
    """The agent's certificate chain and key, and the roots it trusts the CA with (PEM)."""

    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    roots_pem: bytes

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for part in (self.chain_pem, self.key_pem, self.roots_pem):
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()


def classify_rpc_error(
    exc: grpc.RpcError, address: str, method: str
) -> CaUnreachableError | CaRejectedError:
    """An RPC failure as the agent's error: unreachable (retry later) or refused."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else None
    detail = (details or "").replace("\n", " ")[:MAX_DETAIL]
    if code in _UNREACHABLE:
        return CaUnreachableError(
            f"CA agent API at {address} is unreachable ({code.name}: {detail})"
        )
    return CaRejectedError(
        f"CA agent API at {address} refused {method} ({code.name}: {detail})", code=code.name
    )


class AgentApiChannel:
    """A cached channel and stub, keyed by the material it was opened with. Thread-safe."""

    def __init__(self, endpoint: AgentApiEndpoint, *, max_response_bytes: int) -> None:
        self.endpoint = endpoint
        self._max_response_bytes = max_response_bytes
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: Any = None
        self._key = ""

    def open(self, material: MtlsMaterial) -> grpc.Channel:
        """A new channel the caller owns (and closes)."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=material.roots_pem,
            private_key=material.key_pem,
            certificate_chain=material.chain_pem,
        )
        options: list[tuple[str, str | int]] = [
            ("grpc.enable_retries", 0),
            ("grpc.max_receive_message_length", self._max_response_bytes),
        ]
        if self.endpoint.server_name:
            options.append(("grpc.ssl_target_name_override", self.endpoint.server_name))
        return grpc.secure_channel(self.endpoint.address, credentials, options)

    def stub(self, material: MtlsMaterial) -> Any:
        """The AgentService stub on the cached channel, reopened if ``material`` changed."""
        key = material.fingerprint
        with self._lock:
            if self._stub is None or key != self._key:
                if self._channel is not None:
                    self._channel.close()
                self._channel = self.open(material)
                self._stub = pb_grpc.AgentServiceStub(self._channel)
                self._key = key
            return self._stub

    def call(self, stub: Any, method: str, request: Any) -> Any:
        """Invoke ``method`` with the endpoint's deadline; failures become typed errors."""
        try:
            return getattr(stub, method)(
                request, timeout=self.endpoint.timeout.total_seconds(), wait_for_ready=False
            )
        except grpc.RpcError as exc:
            raise classify_rpc_error(exc, self.endpoint.address, method) from exc

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel, self._stub, self._key = None, None, ""
