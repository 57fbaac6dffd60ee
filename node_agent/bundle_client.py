"""``GetBundle`` of the CA's agent API (``citadel.agent.v1.AgentService``), as the node agent
polls it for the trust bundle and CRLs.

The call is authenticated with the agent's own certificate (mTLS, on the CA's mTLS
listener) and the CA is trusted with the roots the agent trusts now. One channel is kept
(HTTP/2, so a poll costs no handshake) and replaced when the agent's certificate or its
roots change. :meth:`BundleClient.probe` makes one call over a fresh channel that trusts
*only* an offered set of roots: it succeeds only if the CA's serving chain verifies with
one of them.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc

from citadel._proto import citadel_agent_pb2 as pb
from citadel._proto import citadel_agent_pb2_grpc as pb_grpc
from citadel.identity.bundle import TrustBundle
from citadel.identity.errors import IdentityError
from citadel.identity.spiffe_id import TrustDomain
from node_agent.errors import BundleRejectedError, CaRejectedError, CaUnreachableError

__all__ = ["BundleClient", "BundleEndpoint", "ChannelMaterial", "FetchedBundle"]

_log = logging.getLogger(__name__)
_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_DETAIL = 200
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class BundleEndpoint:
    address: str
    server_name: str | None = None
    timeout: timedelta = timedelta(seconds=10)

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("CA address is empty")
        if self.timeout <= timedelta(0):
            raise ValueError("CA timeout must be positive")


@dataclass(frozen=True, kw_only=True, slots=True)
class ChannelMaterial:
    """The agent's chain and key (PEM), and the roots it trusts the CA with."""

    chain_pem: bytes
    key_pem: bytes = field(repr=False)
    roots_pem: bytes

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for part in (self.chain_pem, self.key_pem, self.roots_pem):
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchedBundle:
    """A full answer: the bundle, its DER CRLs, and the CA's names for them."""

    bundle: TrustBundle
    crls: tuple[bytes, ...]
    bundle_version: str
    state: str


def _classify(exc: grpc.RpcError, address: str) -> CaUnreachableError | CaRejectedError:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = exc.details() if isinstance(exc, grpc.Call) else None
    detail = (details or "").replace("\n", " ")[:MAX_DETAIL]
    if code in _UNREACHABLE:
        return CaUnreachableError(f"CA at {address} is unreachable ({code.name}: {detail})")
    return CaRejectedError(
        f"CA at {address} refused GetBundle ({code.name}: {detail})", code=code.name
    )


class BundleClient:
    """Thread-safe."""

    def __init__(self, endpoint: BundleEndpoint) -> None:
        self.endpoint = endpoint
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: Any = None
        self._key = ""

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel, self._stub, self._key = None, None, ""

    def _open(self, material: ChannelMaterial) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=material.roots_pem,
            private_key=material.key_pem,
            certificate_chain=material.chain_pem,
        )
        options: list[tuple[str, str | int]] = [
            ("grpc.enable_retries", 0),
            ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
        ]
        if self.endpoint.server_name:
            options.append(("grpc.ssl_target_name_override", self.endpoint.server_name))
        return grpc.secure_channel(self.endpoint.address, credentials, options)

    def _stub_for(self, material: ChannelMaterial) -> Any:
        key = material.fingerprint
        with self._lock:
            if self._stub is None or key != self._key:
                if self._channel is not None:
                    self._channel.close()
                self._channel = self._open(material)
                self._stub = pb_grpc.AgentServiceStub(self._channel)
                self._key = key
            return self._stub

    def _call(self, stub: Any, request: Any) -> Any:
        try:
            return stub.GetBundle(
                request, timeout=self.endpoint.timeout.total_seconds(), wait_for_ready=False
            )
        except grpc.RpcError as exc:
            raise _classify(exc, self.endpoint.address) from exc

    def fetch(
        self,
        material: ChannelMaterial,
        *,
        trust_domain: TrustDomain,
        acknowledged_version: str = "",
        known_state: str = "",
    ) -> FetchedBundle | None:
        """The CA's bundle and CRLs, or None while ``known_state`` is still current.

        Raises:
            CaUnreachableError, CaRejectedError: the call failed.
            BundleRejectedError: the answer is malformed or for another trust domain.
        """
        request = pb.GetBundleRequest(
            acknowledged_bundle_version=acknowledged_version, known_state=known_state
        )
        response = self._call(self._stub_for(material), request)
        if response.unchanged:
            if not known_state:
                raise BundleRejectedError("the CA answered 'unchanged' to a first request")
            return None
        if str(response.trust_domain) != trust_domain.name:
            raise BundleRejectedError(
                f"the CA served the bundle of {str(response.trust_domain)[:64]!r}, "
                f"not of {trust_domain}"
            )
        try:
            bundle = TrustBundle.from_spiffe_json(trust_domain, str(response.spiffe_bundle_json))
        except IdentityError as exc:
            raise BundleRejectedError(f"the CA's bundle is unusable: {exc.message}") from exc
        return FetchedBundle(
            bundle=bundle,
            crls=tuple(bytes(c) for c in response.crls),
            bundle_version=str(response.bundle_version)[:64],
            state=str(response.state)[:64],
        )

    def probe(self, material: ChannelMaterial) -> None:
        """One call over a new channel trusting only ``material.roots_pem``.

        Raises:
            CaUnreachableError: the CA's serving chain does not verify with those roots
                (the handshake fails), or the CA is down.
            CaRejectedError: the CA answered with an error status.
        """
        with self._open(material) as channel:
            self._call(pb_grpc.AgentServiceStub(channel), pb.GetBundleRequest())
