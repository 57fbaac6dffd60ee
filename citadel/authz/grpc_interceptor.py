"""gRPC server interceptors (sync and asyncio) that enforce authz before the handler runs.

The peer principal comes only from the verified client certificate in the call's auth
context (servers must require and verify client certificates to get one; a peer without a
certificate is anonymous). The JWT comes from the call metadata. A denied call is aborted
with the status from :func:`citadel.authz.grpc_status.grpc_code_for` and a short message;
the enforcer logs the detail. Handlers can read the allowed call's identity with
:func:`current_access`.

    server = grpc.server(pool, interceptors=[AuthzServerInterceptor(store)])
    server = grpc.aio.server(interceptors=[AioAuthzServerInterceptor(store)])
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import grpc
import grpc.aio

from citadel.authz.enforcer import AccessRequest, AccessResult, CallAuthorizer, reject
from citadel.authz.errors import InvalidPeerError
from citadel.authz.grpc_status import client_message, grpc_code_for
from citadel.authz.principals import certificate_from_auth_context, parse_grpc_peer

__all__ = [
    "AioAuthzServerInterceptor",
    "AuthzServerInterceptor",
    "access_request_for_call",
    "current_access",
]

_current: contextvars.ContextVar[AccessResult | None] = contextvars.ContextVar(
    "citadel_authz_access", default=None
)


def current_access() -> AccessResult | None:
    """The access result of the call being handled (None outside an authorized call)."""
    return _current.get()


def _metadata(pairs: Iterable[Any] | None) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    for item in pairs or ():
        key, value = item[0], item[1]
        if not isinstance(key, str) or not isinstance(value, str):
            continue  # binary (-bin) metadata never carries a token
        headers.setdefault(key.lower(), []).append(value)
    return {k: tuple(v) for k, v in headers.items()}


def access_request_for_call(
    method: str, context: Any, destination: str | None = None
) -> AccessRequest:
    """Build an :class:`AccessRequest` from a server call context (sync or aio).

    Raises:
        InvalidPeerError: the auth context carries more than one peer certificate.
    """
    peer = parse_grpc_peer(context.peer())
    return AccessRequest(
        peer_certificate=certificate_from_auth_context(context.auth_context()),
        headers=_metadata(context.invocation_metadata()),
        grpc_method=method,
        source_ip=str(peer.ip) if peer.ip is not None else None,
        port=None,
        destination=destination,
        local=peer.local,
    )


class _Guard:
    def __init__(
        self,
        authorizer: CallAuthorizer,
        destination: str | None,
        exempt_methods: Iterable[str],
    ) -> None:
        self.authorizer = authorizer
        self.destination = destination
        self.exempt = frozenset(exempt_methods)

    def request(self, method: str, context: Any) -> AccessRequest | AccessResult:
        """The call as an AccessRequest, or a rejection when the peer identity is unusable."""
        try:
            return access_request_for_call(method, context, self.destination)
        except InvalidPeerError as exc:
            return reject(AccessRequest(grpc_method=method), exc)

    def check(self, method: str, context: Any) -> AccessResult:
        request = self.request(method, context)
        if isinstance(request, AccessResult):
            return request
        return self.authorizer.check(request)


def _abort_args(result: AccessResult) -> tuple[grpc.StatusCode, str]:
    error = result.error
    if error is None:  # an authorizer that denies without an error: treat as a denial
        return grpc.StatusCode.PERMISSION_DENIED, "permission denied"
    return grpc_code_for(error), client_message(error)


# ---- sync --------------------------------------------------------------------------------


def _wrap_sync(handler: Any, guard: Callable[[Any], AccessResult]) -> Any:
    def enforce(context: Any) -> contextvars.Token[AccessResult | None]:
        result = guard(context)
        if not result.allowed:
            context.abort(*_abort_args(result))
            raise PermissionError("call aborted")  # abort() raises; never run the handler
        return _current.set(result)

    def unary(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: Any) -> Any:
            token = enforce(context)
            try:
                return behavior(request, context)
            finally:
                _current.reset(token)

        return call

    def streaming(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def call(request: Any, context: Any) -> Any:
            token = enforce(context)
            try:
                yield from behavior(request, context)
            finally:
                _current.reset(token)

        return call

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kwargs)


class AuthzServerInterceptor(grpc.ServerInterceptor):
    """Enforces an authorizer on a ``grpc.server``.

    Args:
        authorizer: an :class:`Enforcer`, a :class:`PolicyStore` or a :class:`MethodTable`.
        destination: this server's own SPIFFE ID (selects targeted policies).
        exempt_methods: full method names that skip authz entirely (e.g. health checks).
    """

    def __init__(
        self,
        authorizer: CallAuthorizer,
        *,
        destination: str | None = None,
        exempt_methods: Iterable[str] = (),
    ) -> None:
        self._guard = _Guard(authorizer, destination, exempt_methods)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in self._guard.exempt:
            return handler
        return _wrap_sync(handler, lambda context: self._guard.check(method, context))


# ---- asyncio -----------------------------------------------------------------------------


def _wrap_aio(handler: Any, guard: Callable[[Any], Any]) -> Any:
    async def enforce(context: Any) -> None:
        result: AccessResult = await guard(context)
        if not result.allowed:
            await context.abort(*_abort_args(result))
            raise PermissionError("call aborted")  # abort() raises; never run the handler
        _current.set(result)

    def unary(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        async def call(request: Any, context: Any) -> Any:
            await enforce(context)
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return call

    def streaming(behavior: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        if inspect.isasyncgenfunction(behavior):

            async def generate(request: Any, context: Any) -> AsyncIterator[Any]:
                await enforce(context)
                async for item in behavior(request, context):
                    yield item

            return generate

        async def write(request: Any, context: Any) -> Any:
            await enforce(context)
            result = behavior(request, context)
            return await result if inspect.isawaitable(result) else result

        return write

    kwargs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), **kwargs)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), **kwargs)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streaming(handler.unary_stream), **kwargs)
    return grpc.stream_stream_rpc_method_handler(streaming(handler.stream_stream), **kwargs)


class AioAuthzServerInterceptor(grpc.aio.ServerInterceptor):
    """Enforces an authorizer on a ``grpc.aio.server`` (arguments as the sync interceptor).

    The check runs in a worker thread so a JWKS fetch can never stall the event loop.
    """

    def __init__(
        self,
        authorizer: CallAuthorizer,
        *,
        destination: str | None = None,
        exempt_methods: Iterable[str] = (),
    ) -> None:
        self._guard = _Guard(authorizer, destination, exempt_methods)

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in self._guard.exempt:
            return handler

        async def guard(context: Any) -> AccessResult:
            request = self._guard.request(method, context)
            if isinstance(request, AccessResult):
                return request
            return await asyncio.to_thread(self._guard.authorizer.check, request)

        return _wrap_aio(handler, guard)
