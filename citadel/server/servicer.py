"""The gRPC adapter of the CSR API (``istio.v1.auth.IstioCertificateService``).

Thin by design: read the request, ask :class:`~citadel.server.csr_service.CsrService`,
answer with a chain or with the status from :mod:`citadel.server.status`. It also counts
every outcome and times every call.

The method is registered as *stream-unary* on the server side (the wire format is the same
as unary): gRPC then hands us the call even when its message was refused by the transport
(larger than the receive limit), so that such requests are counted and logged too.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import grpc

from citadel._proto import istio_ca_pb2
from citadel.authz.errors import AuthenticationError
from citadel.errors import CitadelError
from citadel.server.call_context import CallContext
from citadel.server.csr_request import CsrRequest
from citadel.server.csr_service import CsrService
from citadel.server.errors import RateLimitedError, RequestUnreadableError
from citadel.server.metrics import ServerMetrics
from citadel.server.retry_info import retry_trailers
from citadel.status import status_for

__all__ = ["SERVICE_NAME", "IstioCertificateServicer"]

_log = logging.getLogger(__name__)
SERVICE_NAME = "istio.v1.auth.IstioCertificateService"
METHOD = "CreateCertificate"


class IstioCertificateServicer:
    def __init__(self, service: CsrService, metrics: ServerMetrics) -> None:
        self._service = service
        self._metrics = metrics
        self._latency = metrics.rpc_duration_seconds

    def create_certificate(
        self,
        requests: Iterator[istio_ca_pb2.IstioCertificateRequest],
        context: grpc.ServicerContext,
    ) -> istio_ca_pb2.IstioCertificateResponse:
        started = time.perf_counter()
        self._metrics.csr_count.inc()
        failure: BaseException | None = None
        response: istio_ca_pb2.IstioCertificateResponse | None = None
        try:
            request = next(requests, None)
            if request is None:
                raise RequestUnreadableError(
                    "no request message (over the receive size limit, or the call broke)"
                )
            call = CallContext.from_grpc(context)
            chain = self._service.create_certificate(call, CsrRequest.from_proto(request))
            response = istio_ca_pb2.IstioCertificateResponse(cert_chain=chain.cert_chain_pem())
        except grpc.RpcError as exc:  # the call broke while reading the request
            failure = RequestUnreadableError("the request could not be read")
            failure.__cause__ = exc
        except Exception as exc:
            failure = exc
        if response is not None:
            self._metrics.record_issuance()
            self._latency.labels(method=METHOD, code="OK").observe(time.perf_counter() - started)
            return response
        assert failure is not None
        self._reject(failure, context, started)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    def _reject(
        self, failure: BaseException, context: grpc.ServicerContext, started: float
    ) -> None:
        status = status_for(failure)
        message = status.client_message(failure)
        kind = failure.kind if isinstance(failure, CitadelError) else "internal"
        self._metrics.record_rejection(
            kind, authentication=isinstance(failure, AuthenticationError)
        )
        if isinstance(failure, CitadelError) and status.code is not grpc.StatusCode.INTERNAL:
            _log.info(
                "CSR from %s refused (%s, %s): %s",
                context.peer(),
                status.code.name,
                kind,
                failure.message,
            )
        else:
            _log.error("CSR from %s failed (%s)", context.peer(), kind, exc_info=failure)
        if isinstance(failure, RateLimitedError):
            context.set_trailing_metadata(retry_trailers(status.code, message, failure.retry_after))
        self._latency.labels(method=METHOD, code=status.code.name).observe(
            time.perf_counter() - started
        )
        context.abort(status.code, message)


def add_to_server(servicer: IstioCertificateServicer, server: grpc.Server) -> None:
    handler = grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            METHOD: grpc.stream_unary_rpc_method_handler(
                servicer.create_certificate,
                request_deserializer=istio_ca_pb2.IstioCertificateRequest.FromString,
                response_serializer=istio_ca_pb2.IstioCertificateResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
