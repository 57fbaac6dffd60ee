"""The gRPC adapter of the node-agent API (``citadel.agent.v1.AgentService``).

Thin by design: read the request, ask :class:`~citadel.server.agent_service.AgentService`,
answer, or abort with the status from :mod:`citadel.server.status`. Per-item failures of
a batch are answered in the item's ``status`` through the same mapping.

:func:`agent_service_handler` returns the service as a generic handler guarded by a
:class:`~citadel.authz.method_table.MethodTable`: only callers whose verified certificate
matches an agent principal reach the handlers; everything else is denied by default.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import grpc
from cryptography.hazmat.primitives.serialization import Encoding

from citadel._proto import citadel_agent_pb2 as pb
from citadel.authz.grpc_interceptor import AuthzServerInterceptor
from citadel.authz.method_table import MethodRule, MethodTable
from citadel.errors import CitadelError
from citadel.identity.registration import RegistrationEntry
from citadel.identity.spiffe_id import SpiffeId, TrustDomain
from citadel.server.agent_service import AgentService, SvidOutcome, SvidRequest
from citadel.server.call_context import CallContext
from citadel.status import status_for

__all__ = [
    "AGENT_SERVICE_NAME",
    "AgentServicer",
    "agent_method_table",
    "agent_service_handler",
    "entry_message",
]

_log = logging.getLogger(__name__)
AGENT_SERVICE_NAME = "citadel.agent.v1.AgentService"
_R = TypeVar("_R")


def entry_message(entry: RegistrationEntry) -> Any:
    """The wire form of an entry."""
    return pb.RegistrationEntry(
        entry_id=entry.entry_id,
        spiffe_id=str(entry.spiffe_id),
        parent_id=str(entry.parent_id),
        selectors=sorted(str(s) for s in entry.selectors),
        ttl_seconds=int(entry.ttl.total_seconds()) if entry.ttl is not None else 0,
        dns_names=list(entry.dns_names),
        revision=entry.revision,
        hint=entry.hint,
    )


def _item_result(outcome: SvidOutcome) -> Any:
    if outcome.chain is not None:
        chain = outcome.chain
        return pb.X509SVIDResult(
            entry_id=outcome.entry_id,
            cert_chain=[c.public_bytes(Encoding.DER) for c in (chain.leaf, *chain.intermediates)],
            status=pb.ItemStatus(code=grpc.StatusCode.OK.value[0]),
        )
    error = outcome.error if outcome.error is not None else RuntimeError("no result")
    status = status_for(error)
    return pb.X509SVIDResult(
        entry_id=outcome.entry_id,
        status=pb.ItemStatus(code=status.code.value[0], message=status.client_message(error)),
    )


class AgentServicer:
    """Implements the four RPCs for a sync ``grpc.server``."""

    def __init__(self, service: AgentService) -> None:
        self._service = service

    def _call(
        self,
        context: grpc.ServicerContext,
        method: str,
        work: Callable[[SpiffeId], _R],
    ) -> _R:
        try:
            agent = self._service.agent(CallContext.from_grpc(context))
            return work(agent)
        except Exception as exc:
            status = status_for(exc)
            if isinstance(exc, CitadelError) and status.code is not grpc.StatusCode.INTERNAL:
                _log.info(
                    "agent API %s from %s refused (%s, %s): %s",
                    method,
                    context.peer(),
                    status.code.name,
                    exc.kind,
                    exc.message,
                )
            else:
                _log.error("agent API %s from %s failed", method, context.peer(), exc_info=exc)
            context.abort(status.code, status.client_message(exc))
            raise AssertionError("unreachable: abort raises") from exc  # pragma: no cover

    def SyncEntries(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(agent: SpiffeId) -> Any:
            sync = self._service.sync_entries(agent, int(request.since_revision))
            return pb.SyncEntriesResponse(
                entries=[entry_message(e) for e in sync.entries],
                tombstones=[
                    pb.EntryTombstone(entry_id=entry_id, revision=revision)
                    for entry_id, revision in sync.tombstones
                ],
                revision=sync.revision,
                full=sync.full,
            )

        return self._call(context, "SyncEntries", work)

    def BatchNewX509SVID(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(agent: SpiffeId) -> Any:
            items = [SvidRequest(str(r.entry_id), bytes(r.csr)) for r in request.requests]
            outcomes = self._service.batch_new_x509_svid(agent, items)
            return pb.BatchNewX509SVIDResponse(results=[_item_result(o) for o in outcomes])

        return self._call(context, "BatchNewX509SVID", work)

    def NewJWTSVID(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(agent: SpiffeId) -> Any:
            minted = self._service.new_jwt_svid(
                agent,
                entry_id=str(request.entry_id),
                spiffe_id=str(request.spiffe_id),
                audiences=[str(a) for a in request.audiences],
            )
            return pb.NewJWTSVIDResponse(
                token=minted.token,
                expires_at=int(minted.expires_at.timestamp()),
                spiffe_id=str(minted.spiffe_id),
            )

        return self._call(context, "NewJWTSVID", work)

    def GetBundle(self, request: Any, context: grpc.ServicerContext) -> Any:
        def work(agent: SpiffeId) -> Any:
            answer = self._service.bundle_for(
                agent,
                acknowledged_version=str(request.acknowledged_bundle_version),
                known_state=str(request.known_state),
            )
            if answer is None:
                return pb.GetBundleResponse(unchanged=True)
            bundle = answer.bundle
            return pb.GetBundleResponse(
                trust_domain=str(bundle.trust_domain),
                spiffe_bundle_json=bundle.to_spiffe_json(),
                crls=list(answer.crls),
                bundle_version=answer.bundle_version,
                state=answer.state,
            )

        return self._call(context, "GetBundle", work)


def agent_method_table(agent_principals: Sequence[str], trust_domain: TrustDomain) -> MethodTable:
    """Every AgentService method is open to agent principals only, except ``GetBundle``:
    the roots and CRLs are public within the trust domain, so any workload of it verified
    by mTLS may poll them (node agents on the Istio CSR path have workload identities).

    Raises:
        ValueError: a malformed principal pattern.
    """
    return MethodTable(
        {
            f"/{AGENT_SERVICE_NAME}/*": MethodRule(allow_agent=True),
            f"/{AGENT_SERVICE_NAME}/GetBundle": MethodRule(
                allow_agent=True, allow_authenticated=True
            ),
        },
        agent_principals=agent_principals,
        trust_domains=frozenset({trust_domain}),
    )


class _GuardedHandler(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler, guard: AuthzServerInterceptor) -> None:
        self._inner = inner
        self._guard = guard

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        return self._guard.intercept_service(self._inner.service, handler_call_details)


def agent_service_handler(servicer: AgentServicer, table: MethodTable) -> grpc.GenericRpcHandler:
    """The AgentService as a generic handler, every call checked against ``table`` first."""
    methods: dict[str, tuple[Callable[[Any, grpc.ServicerContext], Any], Any, Any]] = {
        "SyncEntries": (servicer.SyncEntries, pb.SyncEntriesRequest, pb.SyncEntriesResponse),
        "BatchNewX509SVID": (
            servicer.BatchNewX509SVID,
            pb.BatchNewX509SVIDRequest,
            pb.BatchNewX509SVIDResponse,
        ),
        "NewJWTSVID": (servicer.NewJWTSVID, pb.NewJWTSVIDRequest, pb.NewJWTSVIDResponse),
        "GetBundle": (servicer.GetBundle, pb.GetBundleRequest, pb.GetBundleResponse),
    }
    inner = grpc.method_handlers_generic_handler(
        AGENT_SERVICE_NAME,
        {
            name: grpc.unary_unary_rpc_method_handler(
                behaviour,
                request_deserializer=request_type.FromString,
                response_serializer=response_type.SerializeToString,
            )
            for name, (behaviour, request_type, response_type) in methods.items()
        },
    )
    return _GuardedHandler(inner, AuthzServerInterceptor(table))
