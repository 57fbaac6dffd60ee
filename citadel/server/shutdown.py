"""SIGTERM/SIGINT → a stop event the main thread waits on."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

__all__ = ["StopSignal"]

_log = logging.getLogger(__name__)


class StopSignal:
    """Turns SIGTERM and SIGINT into :attr:`event` (install from the main thread)."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.received: int | None = None

    def install(self) -> StopSignal:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            _log.info("received %s, shutting down", signal.Signals(signum).name)
        self.received = signum
        self.event.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self.event.wait(timeout)
