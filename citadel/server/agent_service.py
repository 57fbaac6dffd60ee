"""The node-agent API's decisions, free of gRPC: who the agent is, which entries it may have,
and signing for them.

Order of checks for every call:

1. the caller's certificate chain is re-verified against the CA's current roots, clock
   and revocations (:class:`~citadel.server.authn.mtls.MtlsAuthenticator`); the method
   table has already made sure the caller is a configured agent;
2. each entry named in the request must be a descendant of the agent's SPIFFE ID
   (:class:`~citadel.server.agent_entry_index.EntryIndex`); otherwise that item is refused
   with PERMISSION_DENIED and nothing is signed for it;
3. a CSR must be a valid workload CSR whose URI SAN is the entry's SPIFFE ID (and whose
   DNS names, if any, are the entry's);
4. signing goes through the CA's :class:`~citadel.ca.issuer.Issuer` (audited before it
   returns) with the entry's TTL and DNS names.

The items of one batch are signed concurrently, so the issuer's group commit records them
in a few transactions instead of one each.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from citadel.ca.issuer import IssuedChain, SignParams
from citadel.ca.jwt_keys import JwtKeySet, MintedJwtSvid
from citadel.errors import CitadelError
from citadel.identity.bundle import TrustBundle
from citadel.identity.csr import MAX_CSR_BYTES, parse_csr, validate_workload_csr
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.keys import PublicKey
from citadel.identity.registration import RegistrationEntry
from citadel.identity.spiffe_id import SpiffeId
from citadel.server.agent_bundle import BundleAnswer, bundle_answer, checked_token
from citadel.server.agent_entry_index import EntryIndex, EntrySync
from citadel.server.agent_errors import (
    AgentRequestError,
    EntryIdentityMismatchError,
    EntryNotAuthorizedError,
)
from citadel.server.authn.base import Caller
from citadel.server.call_context import CallContext
from citadel.server.errors import NoCredentialError

__all__ = [
    "AgentIssuer",
    "AgentService",
    "AgentServiceLimits",
    "CallerAuthenticator",
    "SvidOutcome",
    "SvidRequest",
]

_log = logging.getLogger(__name__)
REQUESTER_PREFIX = "agent:"


class CallerAuthenticator(Protocol):
    def authenticate(self, call: CallContext) -> Caller | None: ...


class AgentIssuer(Protocol):
    def issue(self, public_key: PublicKey, params: SignParams) -> IssuedChain: ...

    def trust_bundle(self) -> TrustBundle: ...


@dataclass(frozen=True, kw_only=True)
class AgentServiceLimits:
    """Bounds on what one call may ask for.

    Attributes:
        max_batch: CSRs in one BatchNewX509SVID call.
        sign_threads: how many items of a batch are signed at once.
    """

    max_batch: int = 256
    sign_threads: int = 8

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch <= 10_000:
            raise ValueError("max_batch must be between 1 and 10000")
        if not 1 <= self.sign_threads <= 256:
            raise ValueError("sign_threads must be between 1 and 256")


@dataclass(frozen=True, slots=True)
class SvidRequest:
    entry_id: str
    csr_der: bytes


@dataclass(frozen=True, slots=True)
class SvidOutcome:
    """One item's result: a chain, or the error that refused it (never both)."""

    entry_id: str
    chain: IssuedChain | None = None
    error: Exception | None = None


class AgentService:
    def __init__(
        self,
        *,
        authenticator: CallerAuthenticator,
        entries: EntryIndex,
        issuer: AgentIssuer,
        jwt_keys: JwtKeySet,
        crls: Callable[[], Sequence[bytes]] = tuple,
        limits: AgentServiceLimits | None = None,
        on_bundle_ack: Callable[[str, str], None] | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._entries = entries
        self._issuer = issuer
        self._jwt_keys = jwt_keys
        self._crls = crls
        self._on_bundle_ack = on_bundle_ack
        self.limits = limits if limits is not None else AgentServiceLimits()
        self._pool = ThreadPoolExecutor(
            max_workers=self.limits.sign_threads, thread_name_prefix="citadel-agent-sign"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- the caller -----------------------------------------------------------------------
    def agent(self, call: CallContext) -> SpiffeId:
        """The calling agent's SPIFFE ID, from its verified client certificate.

        Raises:
            NoCredentialError: no client certificate.
            CredentialRejectedError: the chain does not verify now, or is revoked.
        """
        caller = self._authenticator.authenticate(call)
        if caller is None:
            raise NoCredentialError("the agent API needs the agent's client certificate (mTLS)")
        return caller.identity

    # --- entries ------------------------------------------------------------------------
    def sync_entries(self, agent: SpiffeId, since_revision: int) -> EntrySync:
        """Raises: AgentRequestError for a negative revision."""
        if since_revision < 0:
            raise AgentRequestError("since_revision must not be negative")
        return self._entries.sync(agent, since_revision)

    def _authorized_entry(self, agent: SpiffeId, entry_id: str) -> RegistrationEntry:
        entry = self._entries.authorized(agent).get(entry_id)
        if entry is None:
            raise EntryNotAuthorizedError(
                f"entry {entry_id[:128]!r} does not exist or is not under agent {agent}"
            )
        return entry

    # --- X509-SVIDs ---------------------------------------------------------------------
    def batch_new_x509_svid(
        self, agent: SpiffeId, requests: Sequence[SvidRequest]
    ) -> list[SvidOutcome]:
        """Check and sign every item; a refused item never stops the others.

        Raises:
            AgentRequestError: no items, or more than ``max_batch``.
        """
        if not requests:
            raise AgentRequestError("the batch holds no CSR")
        if len(requests) > self.limits.max_batch:
            raise AgentRequestError(
                f"a batch may hold at most {self.limits.max_batch} CSRs, not {len(requests)}"
            )
        authorized = self._entries.authorized(agent)
        pending: list[SvidOutcome | Future[IssuedChain]] = []
        for request in requests:
            try:
                entry, public_key = self._checked_item(agent, authorized, request)
            except CitadelError as exc:
                _log.info(
                    "agent %s: CSR for entry %.128r refused (%s): %s",
                    agent,
                    request.entry_id,
                    exc.kind,
                    exc.message,
                )
                pending.append(SvidOutcome(request.entry_id, error=exc))
                continue
            params = SignParams(
                spiffe_id=entry.spiffe_id,
                ttl=entry.ttl,
                requester=f"{REQUESTER_PREFIX}{agent}"[:512],
                metadata={
                    "authn": "mtls",
                    "caller": str(agent)[:256],
                    "entry_id": entry.entry_id,
                    "entry_revision": str(entry.revision),
                },
                dns_names=entry.dns_names,
            )
            pending.append(self._pool.submit(self._issuer.issue, public_key, params))
        outcomes: list[SvidOutcome] = []
        for request, item in zip(requests, pending, strict=True):
            if isinstance(item, SvidOutcome):
                outcomes.append(item)
                continue
            try:
                chain = item.result()
            except Exception as exc:
                level = logging.INFO if isinstance(exc, CitadelError) else logging.ERROR
                _log.log(
                    level,
                    "agent %s: signing for entry %s failed (%s)",
                    agent,
                    request.entry_id,
                    getattr(exc, "kind", type(exc).__name__),
                    exc_info=level == logging.ERROR,
                )
                outcomes.append(SvidOutcome(request.entry_id, error=exc))
                continue
            _log.debug(
                "agent %s: issued serial %s for %s (entry %s)",
                agent,
                chain.serial_hex,
                chain.spiffe_id,
                request.entry_id,
            )
            outcomes.append(SvidOutcome(request.entry_id, chain=chain))
        return outcomes

    def _checked_item(
        self,
        agent: SpiffeId,
        authorized: Mapping[str, RegistrationEntry],
        request: SvidRequest,
    ) -> tuple[RegistrationEntry, PublicKey]:
        entry = authorized.get(request.entry_id)
        if entry is None:
            raise EntryNotAuthorizedError(
                f"entry {request.entry_id[:128]!r} does not exist or is not under agent {agent}"
            )
        if len(request.csr_der) > MAX_CSR_BYTES:
            raise AgentRequestError(f"CSR is larger than {MAX_CSR_BYTES} bytes")
        info = validate_workload_csr(parse_csr(request.csr_der), allow_dns_names=True)
        if info.spiffe_id != entry.spiffe_id:
            raise EntryIdentityMismatchError(
                f"CSR asks for {info.spiffe_id} but entry {entry.entry_id} is {entry.spiffe_id}"
            )
        extra = set(info.dns_names) - set(entry.dns_names)
        if extra:
            raise EntryIdentityMismatchError(
                f"CSR asks for DNS name {sorted(extra)[0][:64]!r}, which entry "
                f"{entry.entry_id} does not have"
            )
        return entry, info.public_key

    # --- JWT-SVIDs ----------------------------------------------------------------------
    def new_jwt_svid(
        self, agent: SpiffeId, *, entry_id: str, spiffe_id: str, audiences: Sequence[str]
    ) -> MintedJwtSvid:
        """Mint a JWT-SVID for an entry under ``agent``.

        Raises:
            AgentRequestError: neither entry id nor SPIFFE ID, or bad audiences.
            EntryNotAuthorizedError: the entry (or SPIFFE ID) is not under the agent.
        """
        wanted: SpiffeId | None = None
        if spiffe_id:
            try:
                wanted = SpiffeId.parse(spiffe_id)
            except InvalidSpiffeIdError as exc:
                raise AgentRequestError(f"spiffe_id is invalid: {exc.message}") from exc
        if entry_id:
            entry = self._authorized_entry(agent, entry_id)
            if wanted is not None and wanted != entry.spiffe_id:
                raise EntryIdentityMismatchError(
                    f"entry {entry.entry_id} is {entry.spiffe_id}, not {wanted}"
                )
        elif wanted is not None:
            found = next(
                (e for e in self._entries.authorized_entries(agent) if e.spiffe_id == wanted),
                None,
            )
            if found is None:
                raise EntryNotAuthorizedError(f"no entry for {wanted} is under agent {agent}")
            entry = found
        else:
            raise AgentRequestError("give entry_id or spiffe_id")
        try:
            minted = self._jwt_keys.mint(entry.spiffe_id, list(audiences))
        except (ValueError, TypeError) as exc:
            if isinstance(exc, CitadelError):
                raise
            raise AgentRequestError(f"cannot mint a JWT-SVID: {exc}") from exc
        _log.debug(
            "agent %s: JWT-SVID for %s (entry %s, kid %s, audiences %d)",
            agent,
            entry.spiffe_id,
            entry.entry_id,
            minted.key_id,
            len(audiences),
        )
        return minted

    # --- bundle -------------------------------------------------------------------------
    def bundle(self) -> tuple[TrustBundle, tuple[bytes, ...]]:
        """The trust domain's bundle (X.509 roots and JWT keys) and its CRLs."""
        roots = self._issuer.trust_bundle()
        bundle = TrustBundle(
            roots.trust_domain,
            roots.x509_authorities,
            self._jwt_keys.authorities(),
            roots.sequence,
            roots.refresh_hint,
        )
        return bundle, tuple(self._crls())

    def bundle_for(
        self, caller: SpiffeId, *, acknowledged_version: str = "", known_state: str = ""
    ) -> BundleAnswer | None:
        """The bundle answer, or None while ``known_state`` is still current; records the
        bundle version the caller says it has handed to its proxies.

        Raises:
            AgentRequestError: a version or state this CA never hands out.
        """
        acknowledged = checked_token("acknowledged_bundle_version", acknowledged_version)
        known = checked_token("known_state", known_state)
        if acknowledged and self._on_bundle_ack is not None:
            try:
                self._on_bundle_ack(str(caller), acknowledged)
            except ValueError as exc:
                raise AgentRequestError(f"acknowledgement not recorded: {exc}") from exc
        answer = bundle_answer(*self.bundle())
        return None if known and known == answer.state else answer
