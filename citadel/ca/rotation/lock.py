"""The ``ca-rotation`` store lock: one rotation step at a time across every replica and CLI."""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Protocol

from citadel.ca.authority_errors import RotationBusyError
from citadel.identity.clock import Clock

__all__ = ["ROTATION_LOCK", "LockStore", "RotationLock", "default_holder"]

ROTATION_LOCK = "ca-rotation"


class LockStore(Protocol):
    def try_acquire_lock(self, name: str, holder: str, ttl: timedelta, now: datetime) -> bool: ...

    def release_lock(self, name: str, holder: str) -> bool: ...


def default_holder(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class RotationLock:
    """Takes the lock for the span of one step (or one scheduled run) and always releases it.

    Re-entrant within a thread: the schedule holds it across several steps, and each step
    takes it again. Other threads wait for it; other processes are refused.
    """

    def __init__(
        self, store: LockStore, clock: Clock, *, ttl: timedelta, holder: str | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self.holder = holder or default_holder("citadel")
        self._local = threading.RLock()
        self._depth = 0

    def try_acquire(self) -> bool:
        return self._store.try_acquire_lock(
            ROTATION_LOCK, self.holder, self._ttl, self._clock.now()
        )

    def release(self) -> None:
        self._store.release_lock(ROTATION_LOCK, self.holder)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Raises:
        RotationBusyError: another process is rotating right now.
        """
        with self._local:
            if self._depth == 0 and not self.try_acquire():
                raise RotationBusyError(
                    "another Citadel process is rotating authorities right now; try again shortly"
                )
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.release()
