"""Group commit: many signing threads, one writer, one transaction per batch.

Callers hand an item to :meth:`GroupCommitter.submit` and block. A single committer thread
takes every item queued since its last write (up to ``max_batch``) and commits them with one
call of ``commit``; then it wakes the callers of that batch. A caller therefore never returns
before its item is durable, and a failed commit fails every caller of the batch. With one
caller the batch holds one item.

The hand-off is kept cheap because it happens for every certificate: each caller waits on
its own lock (released once by the committer, so waking a batch wakes exactly its callers
and nobody else), and the committer is only signalled when it has gone idle; while it is
busy, callers just append to the queue.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Generic, TypeVar

__all__ = ["CommitFailed", "GroupCommitter"]

_log = logging.getLogger(__name__)
T = TypeVar("T")


class CommitFailed(Exception):
    """Raised in a caller whose batch was not committed (``cause`` is the writer's error,
    None for a timeout or shutdown)."""

    def __init__(self, message: str, cause: BaseException | None) -> None:
        super().__init__(message)
        self.cause = cause


class _Ticket(Generic[T]):
    """One submitted item; ``done`` is held until its batch has been written (or failed)."""

    __slots__ = ("done", "error", "item")

    def __init__(self, item: T) -> None:
        self.item = item
        self.error: BaseException | None = None
        self.done = threading.Lock()
        self.done.acquire()


class GroupCommitter(Generic[T]):
    """Batches concurrent submissions into single ``commit(batch)`` calls.

    Args:
        commit: writes a whole batch durably or raises; called on the committer thread only.
        max_batch: the most items per ``commit`` call.
        wait_timeout: how long :meth:`submit` waits for its batch.
    """

    def __init__(
        self,
        commit: Callable[[Sequence[T]], object],
        *,
        max_batch: int = 512,
        wait_timeout: timedelta = timedelta(seconds=30),
        name: str = "citadel-group-commit",
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._commit = commit
        self._max_batch = max_batch
        self._wait_timeout = wait_timeout.total_seconds()
        self._lock = threading.Lock()  # guards _queue, _idle and _closed
        self._queue: list[_Ticket[T]] = []
        self._idle = False  # the committer is (about to be) blocked on _wake
        self._wake = threading.Lock()  # released once to wake an idle committer
        self._wake.acquire()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, item: T) -> None:
        """Queue ``item`` and wait until it is committed.

        Raises:
            CommitFailed: the batch failed to commit, timed out, or the committer is closed.
        """
        ticket = _Ticket(item)
        with self._lock:
            if self._closed:
                raise CommitFailed("the committer is closed", None)
            self._queue.append(ticket)
            if self._idle:
                self._idle = False
                self._wake.release()
        if not ticket.done.acquire(timeout=self._wait_timeout):
            raise CommitFailed(f"the commit did not finish within {self._wait_timeout:g}s", None)
        if ticket.error is not None:
            raise CommitFailed("the batch could not be committed", ticket.error)

    def _next_batch(self) -> list[_Ticket[T]] | None:
        """Every queued ticket (up to ``max_batch``); waits while there is none. None once
        closed and drained."""
        while True:
            with self._lock:
                if self._queue:
                    batch = self._queue[: self._max_batch]
                    del self._queue[: self._max_batch]
                    return batch
                if self._closed:
                    return None
                self._idle = True
            self._wake.acquire()

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            error: BaseException | None = None
            try:
                self._commit([ticket.item for ticket in batch])
            except Exception as exc:  # every failure must reach the waiting callers
                _log.error("group commit of %d items failed: %s", len(batch), exc)
                _log.debug("group commit failure detail", exc_info=True)
                error = exc
            for ticket in batch:
                ticket.error = error
                ticket.done.release()

    def queued(self) -> int:
        """How many submitted items wait for the committer (not those being written)."""
        with self._lock:
            return len(self._queue)

    def close(self, timeout: timedelta = timedelta(seconds=30)) -> None:
        """Refuse new items, commit what is queued, and stop the committer thread."""
        with self._lock:
            self._closed = True
            if self._idle:
                self._idle = False
                self._wake.release()
        self._thread.join(timeout.total_seconds())
        if self._thread.is_alive():
            _log.warning("group committer did not stop within %ss", timeout.total_seconds())
