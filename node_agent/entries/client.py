"""The CA's ``citadel.agent.v1.AgentService`` as the node agent calls it, over mTLS.

The agent authenticates with its own X509-SVID (the ``default`` certificate the rotator
keeps fresh) and trusts the CA through the configured roots (plus the bundle the CA
served over this same verified channel). One channel is kept and replaced whenever the
agent's certificate or the trusted roots change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from citadel._proto import citadel_agent_pb2 as pb
from citadel.identity.bundle import TrustBundle
from citadel.identity.errors import IdentityError, InvalidSpiffeIdError
from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from node_agent.agent_api_channel import MAX_DETAIL, AgentApiChannel, AgentApiEndpoint, MtlsMaterial
from node_agent.entries.errors import AgentApiResponseError
from node_agent.entries.records import (
    BundleUpdate,
    EntryUpdate,
    IssuedJwt,
    SvidAnswer,
    SvidOrder,
)
from node_agent.errors import CredentialError

__all__ = ["AgentApiClient", "entry_from_message"]

_log = logging.getLogger(__name__)
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


def entry_from_message(message: Any) -> RegistrationEntry:
    """A wire entry as a :class:`RegistrationEntry`.

    Raises:
        IdentityError: an ID, selector or field the agent does not accept.
    """
    ttl = int(message.ttl_seconds)
    return RegistrationEntry(
        entry_id=str(message.entry_id),
        spiffe_id=SpiffeId.parse(str(message.spiffe_id)),
        parent_id=SpiffeId.parse(str(message.parent_id)),
        selectors=frozenset(Selector.parse(str(s)) for s in message.selectors),
        ttl=timedelta(seconds=ttl) if ttl > 0 else None,
        dns_names=tuple(str(n) for n in message.dns_names),
        revision=max(0, int(message.revision)),
        hint=str(message.hint),
    )


class AgentApiClient:
    """Blocking calls to the agent API. Thread-safe."""

    def __init__(self, endpoint: AgentApiEndpoint, material: Callable[[], MtlsMaterial]) -> None:
        self.endpoint = endpoint
        self._material = material
        self._channel = AgentApiChannel(endpoint, max_response_bytes=MAX_RESPONSE_BYTES)

    def close(self) -> None:
        self._channel.close()

    def _stub_now(self) -> Any:
        try:
            material = self._material()
        except CredentialError:
            raise
        except Exception as exc:
            raise CredentialError(f"the agent's own certificate is not usable: {exc}") from exc
        return self._channel.stub(material)

    def _invoke(self, method: str, request: Any) -> Any:
        return self._channel.call(self._stub_now(), method, request)

    # --- RPCs ---------------------------------------------------------------------------
    def sync_entries(self, since_revision: int) -> EntryUpdate:
        """Raises: CaUnreachableError, CaRejectedError, CredentialError."""
        response = self._invoke("SyncEntries", pb.SyncEntriesRequest(since_revision=since_revision))
        entries: list[RegistrationEntry] = []
        skipped = 0
        for message in response.entries:
            try:
                entries.append(entry_from_message(message))
            except (IdentityError, ValueError, TypeError) as exc:
                skipped += 1
                _log.warning(
                    "registration entry %.128r from the CA is not usable here: %s",
                    str(message.entry_id),
                    getattr(exc, "message", str(exc)),
                )
        return EntryUpdate(
            entries=tuple(entries),
            tombstones=tuple((str(t.entry_id), int(t.revision)) for t in response.tombstones),
            revision=int(response.revision),
            full=bool(response.full),
            skipped=skipped,
        )

    def batch_new_x509_svid(self, orders: Sequence[SvidOrder]) -> list[SvidAnswer]:
        """One answer per order, in order.

        Raises:
            CaUnreachableError, CaRejectedError: the whole call failed.
            AgentApiResponseError: the answer does not match the orders.
        """
        request = pb.BatchNewX509SVIDRequest(
            requests=[pb.X509SVIDRequest(entry_id=o.entry_id, csr=o.csr_der) for o in orders]
        )
        response = self._invoke("BatchNewX509SVID", request)
        results = list(response.results)
        if [str(r.entry_id) for r in results] != [o.entry_id for o in orders]:
            raise AgentApiResponseError(
                f"the CA answered {len(results)} items for {len(orders)} CSRs, "
                "or not in the order asked"
            )
        return [
            SvidAnswer(
                entry_id=str(r.entry_id),
                chain_der=tuple(bytes(c) for c in r.cert_chain),
                code=int(r.status.code),
                message=str(r.status.message)[:MAX_DETAIL],
            )
            for r in results
        ]

    def new_jwt_svid(
        self, entry_id: str, spiffe_id: SpiffeId, audiences: Sequence[str]
    ) -> IssuedJwt:
        """Raises: CaUnreachableError, CaRejectedError, AgentApiResponseError."""
        response = self._invoke(
            "NewJWTSVID",
            pb.NewJWTSVIDRequest(
                entry_id=entry_id, spiffe_id=str(spiffe_id), audiences=list(audiences)
            ),
        )
        try:
            subject = SpiffeId.parse(str(response.spiffe_id))
            expires_at = datetime.fromtimestamp(int(response.expires_at), UTC)
        except (InvalidSpiffeIdError, OverflowError, OSError, ValueError) as exc:
            raise AgentApiResponseError("the CA's JWT-SVID answer is malformed") from exc
        if subject != spiffe_id or not response.token:
            raise AgentApiResponseError(
                f"the CA minted a JWT-SVID for {subject}, not for {spiffe_id}"
            )
        return IssuedJwt(token=str(response.token), spiffe_id=subject, expires_at=expires_at)

    def get_bundle(self, trust_domain: TrustDomain) -> BundleUpdate:
        """The bundle of ``trust_domain`` (the agent's own).

        Raises:
            AgentApiResponseError: another trust domain, or an undecodable document.
        """
        response = self._invoke("GetBundle", pb.GetBundleRequest())
        if str(response.trust_domain) != trust_domain.name:
            raise AgentApiResponseError(
                f"the CA served the bundle of {str(response.trust_domain)[:64]!r}, "
                f"not {trust_domain}"
            )
        try:
            bundle = TrustBundle.from_spiffe_json(trust_domain, str(response.spiffe_bundle_json))
        except IdentityError as exc:
            raise AgentApiResponseError(f"the CA's bundle is unusable: {exc.message}") from exc
        if not bundle.x509_authorities:
            raise AgentApiResponseError("the CA's bundle holds no X.509 root")
        return BundleUpdate(bundle=bundle, crls=tuple(bytes(c) for c in response.crls))
