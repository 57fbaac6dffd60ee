"""The read deadline: a call whose request message does not arrive in time is cancelled
(its worker thread freed); calls that send their message are untouched."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from datetime import timedelta
from typing import Any

import grpc
import pytest

from citadel.server.read_deadline import ReadDeadlineInterceptor, ReadWatchdog

pytestmark = [pytest.mark.timeout(60)]


def test_watchdog_cancels_only_what_is_not_disarmed_in_time() -> None:
    watchdog = ReadWatchdog(timedelta(milliseconds=100))
    cancelled: list[str] = []
    late = watchdog.arm(lambda: cancelled.append("late"), lambda: "late", since=watchdog.now())
    prompt = watchdog.arm(
        lambda: cancelled.append("prompt"), lambda: "prompt", since=watchdog.now()
    )
    assert watchdog.disarm(prompt) is True
    deadline = time.monotonic() + 5
    while not cancelled and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cancelled == ["late"]
    assert watchdog.disarm(late) is False  # it had already fired
    assert watchdog.cancelled == 1


def test_a_call_that_waited_for_a_thread_still_gets_a_short_grace() -> None:
    watchdog = ReadWatchdog(timedelta(seconds=1))
    cancelled = threading.Event()
    long_ago = watchdog.now() - 60
    armed = watchdog.arm(cancelled.set, lambda: "queued", since=long_ago)
    assert not cancelled.wait(0.1)  # not cancelled the very instant it got its thread
    assert cancelled.wait(2)
    assert watchdog.disarm(armed) is False


@pytest.mark.parametrize("bad", [timedelta(0), timedelta(seconds=-1)], ids=["zero", "negative"])
def test_watchdog_needs_a_positive_timeout(bad: timedelta) -> None:
    with pytest.raises(ValueError, match="positive"):
        ReadWatchdog(bad)


class _Server:
    def __init__(self, *, streams_per_connection: int = 100) -> None:
        self.interceptor = ReadDeadlineInterceptor(timedelta(milliseconds=300))
        self.server = grpc.server(
            futures.ThreadPoolExecutor(4),
            interceptors=[self.interceptor],
            options=[("grpc.max_concurrent_streams", streams_per_connection)],
        )
        handlers: dict[str, Any] = {
            "Unary": grpc.unary_unary_rpc_method_handler(lambda request, context: request),
            "ClientStream": grpc.stream_unary_rpc_method_handler(
                lambda requests, context: b"".join(requests)
            ),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("test.Echo", handlers),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def close(self) -> None:
        self.channel.close()
        self.server.stop(None)


@pytest.fixture
def served() -> Iterator[_Server]:
    server = _Server(streams_per_connection=2)
    yield server
    server.close()


def test_calls_that_send_their_message_are_served(served: _Server) -> None:
    unary: Any = served.channel.unary_unary("/test.Echo/Unary")
    streaming: Any = served.channel.stream_unary("/test.Echo/ClientStream")
    # Many more calls than the connection's stream limit: each must release its stream.
    for index in range(20):
        assert unary(b"x%d" % index, timeout=5) == b"x%d" % index
        assert streaming(iter([b"a", b"b"]), timeout=5) == b"ab"
    assert served.interceptor.watchdog.cancelled == 0


def test_a_call_whose_message_never_comes_is_cancelled(served: _Server) -> None:
    release = threading.Event()

    def never() -> Iterator[bytes]:
        release.wait(30)
        yield from ()

    call: Any = served.channel.stream_unary("/test.Echo/Unary")
    stalled = call.future(never())
    try:
        with pytest.raises(grpc.RpcError) as info:
            stalled.result(timeout=10)
        assert info.value.code() is grpc.StatusCode.CANCELLED
        assert served.interceptor.watchdog.cancelled == 1
        unary: Any = served.channel.unary_unary("/test.Echo/Unary")
        assert unary(b"ok", timeout=5) == b"ok"
    finally:
        release.set()


def test_closing_the_watchdog_stops_its_thread_and_arming_restarts_it() -> None:
    watchdog = ReadWatchdog(timedelta(milliseconds=50))
    first = threading.Event()
    watchdog.arm(first.set, lambda: "a", since=watchdog.now())
    assert first.wait(5)
    thread = watchdog._thread
    assert thread is not None and thread.is_alive()
    watchdog.close()
    assert not thread.is_alive()
    again = threading.Event()
    watchdog.arm(again.set, lambda: "b", since=watchdog.now())
    assert again.wait(5)
    watchdog.close()
