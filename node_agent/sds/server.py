"""The SDS gRPC server (grpc.aio) on a Unix socket.

Each stream is one coroutine: a reader task feeds Envoy's requests into a queue, and
cache notifications (which arrive on the publisher's thread) are handed to the same
queue with ``call_soon_threadsafe``; the coroutine applies them in order to the stream's
protocol logic and writes the responses. A thousand idle streams cost a thousand small
coroutines, not a thousand threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3 import discovery_pb2
from envoy.service.secret.v3 import sds_pb2_grpc

from citadel.status import status_for
from node_agent.errors import SdsRequestError, UnknownResourceError
from node_agent.sds.delta import DeltaStream
from node_agent.sds.envoy_secrets import SECRET_TYPE_URL, to_envoy_any
from node_agent.sds.socket_path import prepare_socket_path
from node_agent.sds.sotw import SotwStream
from node_agent.sds.stream_base import StreamBase, StreamContext, Watch

__all__ = ["SdsServer", "SdsServicer"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Changed:
    name: str


@dataclass(frozen=True, slots=True)
class _Ended:
    error: BaseException | None


class SdsServicer(sds_pb2_grpc.SecretDiscoveryServiceServicer):  # type: ignore[misc]
    def __init__(self, context: StreamContext) -> None:
        self._ctx = context

    async def StreamSecrets(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for response in self._serve(SotwStream, request_iterator, context):
            yield response

    async def DeltaSecrets(
        self, request_iterator: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for response in self._serve(DeltaStream, request_iterator, context):
            yield response

    async def FetchSecrets(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        if not request.HasField("node") or not request.node.id:
            error = SdsRequestError("FetchSecrets requires 'node' with an 'id'")
            await _abort(context, error)
        response = discovery_pb2.DiscoveryResponse(
            version_info=str(next(self._ctx.versions)),
            type_url=SECRET_TYPE_URL,
            nonce=f"n{next(self._ctx.nonces)}",
        )
        for name in request.resource_names:
            try:
                self._ctx.catalog.ensure(name)
            except UnknownResourceError as exc:
                self._ctx.metrics.sds_unknown_resources.labels("fetch").inc()
                await _abort(context, exc)
            entry = self._ctx.cache.get(name)
            if entry is not None and self._ctx.gate.allows(entry.secret):
                response.resources.append(to_envoy_any(entry.secret))
        return response

    async def _serve(
        self,
        stream_type: Callable[[StreamContext, Watch], StreamBase],
        request_iterator: AsyncIterator[Any],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()

        def notify(name: str) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(queue.put_nowait, _Changed(name))

        stream = stream_type(self._ctx, lambda name: self._ctx.cache.subscribe(name, notify))
        api = stream.api

        async def read() -> None:
            try:
                async for request in request_iterator:
                    queue.put_nowait(request)
            except (asyncio.CancelledError, grpc.RpcError, grpc.aio.AioRpcError) as exc:
                queue.put_nowait(_Ended(exc))
                return
            queue.put_nowait(_Ended(None))

        reader = asyncio.create_task(read())
        self._ctx.metrics.sds_streams.labels(api).inc()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Ended):
                    return
                try:
                    if isinstance(item, _Changed):
                        responses = stream.on_change(item.name)
                    else:
                        responses = stream.on_request(item)
                except SdsRequestError as exc:
                    self._ctx.metrics.sds_stream_errors.labels(exc.kind).inc()
                    _log.warning("%s stream %d closed: %s", api, stream.stream_id, exc.message)
                    await _abort(context, exc)
                for response in responses:
                    yield response
        finally:
            reader.cancel()
            stream.close()
            self._ctx.metrics.sds_streams.labels(api).dec()


class SdsServer:
    """Owns the grpc.aio server and its socket file."""

    def __init__(self, socket_path: Path, context: StreamContext) -> None:
        self.socket_path = socket_path
        self._ctx = context
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Bind the socket and start serving.

        Raises:
            SocketPathError / SocketInUseError: the path cannot be used.
        """
        prepare_socket_path(self.socket_path)
        server = grpc.aio.server(
            options=[
                ("grpc.keepalive_permit_without_calls", 1),
                ("grpc.http2.min_ping_interval_without_data_ms", 5000),
            ]
        )
        sds_pb2_grpc.add_SecretDiscoveryServiceServicer_to_server(SdsServicer(self._ctx), server)
        server.add_insecure_port(f"unix:{self.socket_path}")
        await server.start()
        os.chmod(self.socket_path, 0o660)
        self._server = server
        _log.info("SDS server listening on %s", self.socket_path)

    async def stop(self, grace: float = 1.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    status = status_for(error)
    await context.abort(status.code, status.client_message(error))
