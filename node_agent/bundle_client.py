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

import logging
from dataclasses import dataclass

from citadel._proto import citadel_agent_pb2 as pb
from citadel._proto import citadel_agent_pb2_grpc as pb_grpc
from citadel.identity.bundle import TrustBundle
from citadel.identity.errors import IdentityError
from citadel.identity.spiffe_id import TrustDomain
from node_agent.agent_api_channel import AgentApiChannel, AgentApiEndpoint, MtlsMaterial
from node_agent.errors import BundleRejectedError

__all__ = ["BundleClient", "FetchedBundle"]

_log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, kw_only=True, slots=True)
class FetchedBundle:
    """A full answer: the bundle, its DER CRLs, and the CA's names for them."""

    bundle: TrustBundle
    crls: tuple[bytes, ...]
    bundle_version: str
    state: str


class BundleClient:
    """Thread-safe."""

    def __init__(self, endpoint: AgentApiEndpoint) -> None:
        self.endpoint = endpoint
        self._channel = AgentApiChannel(endpoint, max_response_bytes=MAX_RESPONSE_BYTES)

    def close(self) -> None:
        self._channel.close()

    def fetch(
        self,
        material: MtlsMaterial,
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
        response = self._channel.call(self._channel.stub(material), "GetBundle", request)
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

    def probe(self, material: MtlsMaterial) -> None:
        """One call over a new channel trusting only ``material.roots_pem``.

        Raises:
            CaUnreachableError: the CA's serving chain does not verify with those roots
                (the handshake fails), or the CA is down.
            CaRejectedError: the CA answered with an error status.
        """
        with self._channel.open(material) as channel:
            self._channel.call(
                pb_grpc.AgentServiceStub(channel), "GetBundle", pb.GetBundleRequest()
            )
