"""A call must deliver its first request message in time, or it is cancelled.

The gRPC server runs every call on a worker thread from the moment its headers arrive, and
the thread waits there for the request message. A client that opens streams and never sends
the message (a stalled or hostile client; each HTTP/2 connection may carry many streams)
would hold every thread and starve everybody else, forever when it sets no deadline.

:class:`ReadDeadlineInterceptor` bounds that wait for every method of the server: unary
handlers are served as request-streaming ones (the wire format is the same) so that the
message is read by our code, under a deadline; a request-streaming handler gets the same
bound on its first message. One :class:`ReadWatchdog` thread cancels the calls whose message
has not arrived in time, which frees their threads; the client sees CANCELLED.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import grpc

__all__ = ["DEFAULT_REQUEST_READ_TIMEOUT", "ReadDeadlineInterceptor", "ReadWatchdog"]

_log = logging.getLogger(__name__)

DEFAULT_REQUEST_READ_TIMEOUT = timedelta(seconds=5)
MIN_GRACE = 0.25


@dataclass(order=True)
class _Armed:
    deadline: float
    seq: int
    cancel: Callable[[], None] = field(compare=False)
    describe: Callable[[], str] = field(compare=False)
    active: bool = field(default=True, compare=False)


def _nothing() -> None:
    return None


class ReadWatchdog:
    """Cancels calls whose request message is overdue; one lazily started daemon thread."""

    def __init__(self, timeout: timedelta, *, clock: Callable[[], float] = time.monotonic):
        if timeout <= timedelta(0):
            raise ValueError("the request read timeout must be positive")
        self.timeout = timeout
        self._seconds = timeout.total_seconds()
        self._clock = clock
        self._heap: list[_Armed] = []
        self._seq = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.cancelled = 0

    def now(self) -> float:
        return self._clock()

    def close(self) -> None:
        """Stop the thread (calls still armed are left alone); arming restarts it."""
        with self._condition:
            self._closing = True
            self._condition.notify()
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(5)
        with self._condition:
            self._closing = False
            self._heap.clear()

    def arm(
        self, cancel: Callable[[], None], describe: Callable[[], str], *, since: float
    ) -> _Armed:
        """Call ``cancel`` unless :meth:`disarm` comes within the timeout counted from
        ``since`` (the call's arrival); a call that waited for a thread longer than that
        still gets :data:`MIN_GRACE` seconds for a message that is already there."""
        deadline = max(since + self._seconds, self._clock() + MIN_GRACE)
        armed = _Armed(deadline, next(self._seq), cancel, describe)
        with self._condition:
            heapq.heappush(self._heap, armed)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="citadel-read-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0] is armed:
                self._condition.notify()
        return armed

    def disarm(self, armed: _Armed) -> bool:
        """Stop watching; False when the call was already cancelled for being late."""
        with self._condition:
            was_active = armed.active
            armed.active = False
            # Drop the references to the call: gRPC frees a call's HTTP/2 stream only once
            # its Python objects are gone, and this entry stays queued until its deadline.
            armed.cancel = _nothing
            armed.describe = str
            return was_active

    def _run(self) -> None:
        while True:
            overdue: list[tuple[Callable[[], None], Callable[[], str]]] = []
            with self._condition:
                if self._closing:
                    return
                while self._heap and not self._heap[0].active:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0].deadline - self._clock()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                while self._heap and self._heap[0].deadline <= self._clock():
                    armed = heapq.heappop(self._heap)
                    if armed.active:
                        armed.active = False
                        overdue.append((armed.cancel, armed.describe))
                        self.cancelled += 1
            for cancel, describe in overdue:
                _log.warning(
                    "%s: no request message within %.1fs; call cancelled",
                    describe(),
                    self._seconds,
                )
                try:
                    cancel()
                except Exception:  # a call that ended meanwhile: nothing left to free
                    _log.debug("cancelling an overdue call failed", exc_info=True)


def _cancel(context: grpc.ServicerContext) -> None:
    context.cancel()


def _first_message(
    watchdog: ReadWatchdog,
    requests: Iterator[Any],
    context: grpc.ServicerContext,
    method: str,
    arrival: float,
) -> Any:
    armed = watchdog.arm(
        lambda: _cancel(context), lambda: f"{method} from {context.peer()}", since=arrival
    )
    try:
        return next(requests)
    finally:
        watchdog.disarm(armed)


class _FirstBounded(Iterator[Any]):
    """A request iterator whose first message must arrive within the watchdog's timeout."""

    def __init__(
        self,
        watchdog: ReadWatchdog,
        requests: Iterator[Any],
        context: Any,
        method: str,
        arrival: float,
    ) -> None:
        self._watchdog = watchdog
        self._requests = requests
        self._context = context
        self._method = method
        self._arrival = arrival
        self._first = True

    def __next__(self) -> Any:
        if self._first:
            self._first = False
            return _first_message(
                self._watchdog, self._requests, self._context, self._method, self._arrival
            )
        return next(self._requests)


# grpc's method handlers are typed per request/response type; here any handler will do.
Handler = Any


def _bounded_handler(
    handler: Handler, watchdog: ReadWatchdog, method: str, arrival: float
) -> Handler:
    """The same behaviour, served request-streaming, with the first message bounded."""

    def single(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        try:
            return _first_message(watchdog, requests, context, method, arrival)
        except StopIteration:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no request message")

    def stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        return _FirstBounded(watchdog, requests, context, method, arrival)

    load, dump = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary is not None:
        unary_unary = handler.unary_unary
        return grpc.stream_unary_rpc_method_handler(
            lambda r, c: unary_unary(single(r, c), c), load, dump
        )
    if handler.unary_stream is not None:
        unary_stream = handler.unary_stream
        return grpc.stream_stream_rpc_method_handler(
            lambda r, c: unary_stream(single(r, c), c), load, dump
        )
    if handler.stream_unary is not None:
        stream_unary = handler.stream_unary
        return grpc.stream_unary_rpc_method_handler(
            lambda r, c: stream_unary(stream(r, c), c), load, dump
        )
    if handler.stream_stream is not None:
        stream_stream = handler.stream_stream
        return grpc.stream_stream_rpc_method_handler(
            lambda r, c: stream_stream(stream(r, c), c), load, dump
        )
    return handler


class ReadDeadlineInterceptor(grpc.ServerInterceptor):
    """Bounds, for every method, the wait for a call's first request message."""

    def __init__(self, timeout: timedelta = DEFAULT_REQUEST_READ_TIMEOUT) -> None:
        self.watchdog = ReadWatchdog(timeout)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        # Runs on gRPC's polling thread as the call arrives, before it waits for a worker.
        arrival = self.watchdog.now()
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = str(getattr(handler_call_details, "method", "?"))
        return _bounded_handler(handler, self.watchdog, method, arrival)
