"""The SPIFFE Workload API servicer: a thin adapter over an :class:`IdentitySource`.

Every call must carry ``workload.spiffe.io: true`` (else INVALID_ARGUMENT) and is then
attested: the connection's pinned peer (see :mod:`.proxy`) becomes selectors, and the
selectors become identities. A caller entitled to no identity gets PERMISSION_DENIED on
every RPC. Streams send a first message as soon as there is something to send, then a new
full message after each change the source reports; when a change leaves the caller with
no identity at all, the stream ends with PERMISSION_DENIED.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import timedelta
from typing import Any, Protocol

import grpc

from citadel._proto import workload_pb2
from citadel.identity.clock import Clock
from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.jwt_svid import (
    DEFAULT_LEEWAY,
    MAX_AUDIENCE_CHARS,
    MAX_AUDIENCES,
    validate_jwt_svid_with_bundles,
)
from citadel.identity.selectors import Selector
from citadel.identity.spiffe_id import SpiffeId
from citadel.status import status_for
from node_agent.attestation.errors import PeerGoneError
from node_agent.attestation.peer import PeerProcess
from node_agent.workload_api.errors import (
    InvalidWorkloadRequestError,
    MissingSecurityHeaderError,
    NoIdentityError,
    UnidentifiedCallerError,
)
from node_agent.workload_api.peer_registry import PeerRegistry
from node_agent.workload_api.responses import (
    bundles_by_domain,
    claims_struct,
    jwt_bundles_response,
    x509_bundles_response,
    x509_svid_response,
)
from node_agent.workload_api.source import IdentitySource, WorkloadIdentity

__all__ = ["SECURITY_HEADER", "WorkloadApiServicer", "WorkloadAttestor"]

_log = logging.getLogger(__name__)

SECURITY_HEADER = ("workload.spiffe.io", "true")

Message = Any  # generated protobuf classes are untyped


class WorkloadAttestor(Protocol):
    def attest(self, peer: PeerProcess) -> frozenset[Selector]:
        """The selectors of a pinned peer (blocking; runs in a worker thread)."""
        ...


class WorkloadApiServicer:
    """Implements the five RPCs of ``SpiffeWorkloadAPI`` for ``grpc.aio``."""

    def __init__(
        self,
        *,
        source: IdentitySource,
        attestor: WorkloadAttestor,
        registry: PeerRegistry,
        clock: Clock,
        jwt_leeway: timedelta = DEFAULT_LEEWAY,
    ) -> None:
        self._source = source
        self._attestor = attestor
        self._registry = registry
        self._clock = clock
        self._jwt_leeway = jwt_leeway
        self._closed = False
        self._wakeups: set[asyncio.Event] = set()

    def close(self) -> None:
        """End every open stream cleanly (status OK); used when the server stops."""
        self._closed = True
        for wakeup in self._wakeups:
            wakeup.set()

    # --- RPCs ----------------------------------------------------------------------------
    async def FetchX509SVID(
        self, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        try:
            async for message in self._watch(context, self._x509_svid_message):
                yield message
        except Exception as exc:
            await _fail(context, exc, "FetchX509SVID")

    async def FetchX509Bundles(
        self, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        try:
            async for message in self._watch(context, self._x509_bundles_message):
                yield message
        except Exception as exc:
            await _fail(context, exc, "FetchX509Bundles")

    async def FetchJWTBundles(
        self, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        try:
            async for message in self._watch(context, self._jwt_bundles_message):
                yield message
        except Exception as exc:
            await _fail(context, exc, "FetchJWTBundles")

    async def FetchJWTSVID(
        self, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Message:
        try:
            return await self._fetch_jwt_svid(request, context)
        except Exception as exc:
            await _fail(context, exc, "FetchJWTSVID")
            raise  # not reached: abort raises

    async def ValidateJWTSVID(
        self, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Message:
        try:
            return await self._validate_jwt_svid(request, context)
        except Exception as exc:
            await _fail(context, exc, "ValidateJWTSVID")
            raise

    # --- the caller ----------------------------------------------------------------------
    async def _selectors(self, context: grpc.aio.ServicerContext[Any, Any]) -> frozenset[Selector]:
        _, selectors = await self._caller(context)
        return selectors

    async def _caller(
        self, context: grpc.aio.ServicerContext[Any, Any]
    ) -> tuple[PeerProcess, frozenset[Selector]]:
        metadata = context.invocation_metadata() or ()
        if not any((key, value) == SECURITY_HEADER for key, value in metadata):
            raise MissingSecurityHeaderError("security header missing from request")
        peer = self._registry.lookup(context.peer())
        if peer is None:
            raise UnidentifiedCallerError("call did not arrive through the attesting proxy")
        return peer, await asyncio.to_thread(self._attestor.attest, peer)

    def _entitled(self, selectors: frozenset[Selector]) -> Sequence[WorkloadIdentity]:
        identities = self._source.identities_for(selectors)
        if not identities:
            raise NoIdentityError("no identity issued")
        return identities

    # --- streams -------------------------------------------------------------------------
    async def _watch(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        build: Callable[[frozenset[Selector]], Message | None],
    ) -> AsyncIterator[Message]:
        peer, selectors = await self._caller(context)
        wakeup = asyncio.Event()
        loop = asyncio.get_running_loop()

        def listener() -> None:
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is gone
                loop.call_soon_threadsafe(wakeup.set)

        subscription = self._source.subscribe(listener)
        self._wakeups.add(wakeup)
        try:
            last: bytes | None = None
            while not self._closed:
                wakeup.clear()
                message = build(selectors)
                if message is not None:
                    wire = message.SerializeToString(deterministic=True)
                    if wire != last:
                        if not peer.is_alive():  # the socket outlived the attested process
                            raise PeerGoneError("the attested process exited; stream ended")
                        last = wire
                        yield message
                await wakeup.wait()
        finally:
            self._wakeups.discard(wakeup)
            subscription.close()

    def _x509_svid_message(self, selectors: frozenset[Selector]) -> Message | None:
        identities = self._entitled(selectors)
        bundles = bundles_by_domain(self._source.trust_bundles())
        return x509_svid_response(identities, bundles, self._source.crls())

    def _x509_bundles_message(self, selectors: frozenset[Selector]) -> Message | None:
        self._entitled(selectors)
        bundles = bundles_by_domain(self._source.trust_bundles())
        return x509_bundles_response(bundles, self._source.crls())

    def _jwt_bundles_message(self, selectors: frozenset[Selector]) -> Message | None:
        self._entitled(selectors)
        return jwt_bundles_response(bundles_by_domain(self._source.trust_bundles()))

    # --- unary ---------------------------------------------------------------------------
    async def _fetch_jwt_svid(
        self, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Message:
        selectors = await self._selectors(context)
        audiences = _audiences(list(request.audience))
        identities = self._entitled(selectors)
        if request.spiffe_id:
            wanted = _spiffe_id(request.spiffe_id)
            identities = [i for i in identities if i.spiffe_id == wanted]
            if not identities:
                raise NoIdentityError("no identity issued for the requested SPIFFE ID")
        svids = []
        seen: set[SpiffeId] = set()
        hints: set[str] = set()
        for identity in identities:
            if identity.spiffe_id in seen or (identity.hint and identity.hint in hints):
                continue
            seen.add(identity.spiffe_id)
            if identity.hint:
                hints.add(identity.hint)
            token = await asyncio.to_thread(
                self._source.mint_jwt_svid, identity.spiffe_id, audiences
            )
            svids.append(
                workload_pb2.JWTSVID(
                    spiffe_id=str(identity.spiffe_id), svid=token, hint=identity.hint
                )
            )
        return workload_pb2.JWTSVIDResponse(svids=svids)

    async def _validate_jwt_svid(
        self, request: Message, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Message:
        selectors = await self._selectors(context)
        self._entitled(selectors)
        if not request.audience:
            raise InvalidWorkloadRequestError("audience must be specified")
        if not request.svid:
            raise InvalidWorkloadRequestError("svid must be specified")
        bundles = bundles_by_domain(self._source.trust_bundles())
        svid = validate_jwt_svid_with_bundles(
            request.svid,
            request.audience,
            bundles,
            now=self._clock.now(),
            leeway=self._jwt_leeway,
        )
        return workload_pb2.ValidateJWTSVIDResponse(
            spiffe_id=str(svid.spiffe_id), claims=claims_struct(svid.claims)
        )


def _audiences(values: list[str]) -> tuple[str, ...]:
    if not values:
        raise InvalidWorkloadRequestError("audience must be specified")
    if len(values) > MAX_AUDIENCES:
        raise InvalidWorkloadRequestError(f"at most {MAX_AUDIENCES} audiences may be requested")
    for value in values:
        if not value:
            raise InvalidWorkloadRequestError("audience must not be empty")
        if len(value) > MAX_AUDIENCE_CHARS:
            raise InvalidWorkloadRequestError(
                f"audience must be at most {MAX_AUDIENCE_CHARS} characters"
            )
    return tuple(dict.fromkeys(values))


def _spiffe_id(value: str) -> SpiffeId:
    try:
        spiffe_id = SpiffeId.parse(value)
    except InvalidSpiffeIdError as exc:
        raise InvalidWorkloadRequestError(f"requested SPIFFE ID is invalid: {exc.message}") from exc
    return spiffe_id


async def _fail(context: grpc.aio.ServicerContext[Any, Any], exc: Exception, method: str) -> None:
    status = status_for(exc)
    code, message = status.code, status.client_message(exc)
    if code is grpc.StatusCode.INTERNAL:
        _log.error("workload API %s failed", method, exc_info=exc)
    else:
        _log.info(
            "workload API %s refused (%s): %s",
            method,
            getattr(exc, "kind", type(exc).__name__),
            getattr(exc, "message", str(exc)),
        )
    await context.abort(code, message)
