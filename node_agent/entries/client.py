"""The CA's ``citadel.agent.v1.AgentService`` as the node agent calls it, over mTLS.

The agent authenticates with its own X509-SVID (the ``default`` certificate the rotator
keeps fresh) and trusts the CA through the configured roots (plus the bundle the CA
served over this same verified channel). One channel is kept and replaced whenever the
agent's certificate or the trusted roots change.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from citadel._proto import citadel_agent_pb2 as pb
from citadel._proto import citadel_agent_pb2_grpc as pb_grpc
from citadel.identity.bundle import TrustBundle
from citadel.identity.errors import IdentityError, InvalidSpiffeIdError
from citadel.identity.registration import RegistrationEntry
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from node_agent.entries.errors import AgentApiResponseError
from node_agent.entries.records import (
    BundleUpdate,
    EntryUpdate,
    IssuedJwt,
    SvidAnswer,
    SvidOrder,
)
from node_agent.errors import CaRejectedError, CaUnreachableError, CredentialError

__all__ = ["AgentApiClient", "AgentApiEndpoint", "MtlsMaterial", "entry_from_message"]

_log = logging.getLogger(__name__)
_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
MAX_DETAIL = 200
MAX_RESPONSE_BYTES = 16 * 1024 * 1024


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


def _classify(
    exc: grpc.RpcError, address: str, method: str
) -> CaUnreachableError | CaRejectedError:
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


class AgentApiClient:
    """Blocking calls to the agent API. Thread-safe."""

    def __init__(self, endpoint: AgentApiEndpoint, material: Callable[[], MtlsMaterial]) -> None:
        self.endpoint = endpoint
        self._material = material
        self._lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._stub: Any = None
        self._channel_key = ""

    def close(self) -> None:
        with self._lock:
            if self._channel is not None:
                self._channel.close()
            self._channel = None
            self._stub = None
            self._channel_key = ""

    def _stub_now(self) -> Any:
        try:
            material = self._material()
        except CredentialError:
            raise
        except Exception as exc:
            raise CredentialError(f"the agent's own certificate is not usable: {exc}") from exc
        key = material.fingerprint
        with self._lock:
            if self._stub is None or key != self._channel_key:
                if self._channel is not None:
                    self._channel.close()
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
                self._channel = grpc.secure_channel(self.endpoint.address, credentials, options)
                self._stub = pb_grpc.AgentServiceStub(self._channel)
                self._channel_key = key
            return self._stub

    def _invoke(self, method: str, request: Any) -> Any:
        stub = self._stub_now()
        try:
            return getattr(stub, method)(
                request, timeout=self.endpoint.timeout.total_seconds(), wait_for_ready=False
            )
        except grpc.RpcError as exc:
            raise _classify(exc, self.endpoint.address, method) from exc

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
