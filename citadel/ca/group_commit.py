"""Group commit: many signing threads, one writer, one transaction per batch.

Callers hand an item to :meth:`GroupCommitter.submit` and block. A single committer thread
takes every item queued since its last write and commits them with one call of ``commit``;
then it wakes the callers of that batch. A caller therefore never returns before its item
is durable, and a failed commit fails every caller of the batch. With one caller the
batch holds one item.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
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


class _Batch(Generic[T]):
    __slots__ = ("done", "error", "items")

    def __init__(self) -> None:
        self.items: list[T] = []
        self.done = threading.Event()
        self.error: BaseException | None = None


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
        self._cond = threading.Condition(threading.Lock())
        self._full: deque[_Batch[T]] = deque()
        self._open: _Batch[T] = _Batch()
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
        with self._cond:
            if self._closed:
                raise CommitFailed("the committer is closed", None)
            batch = self._open
            batch.items.append(item)
            if len(batch.items) >= self._max_batch:
                self._full.append(batch)
                self._open = _Batch()
            self._cond.notify()
        if not batch.done.wait(self._wait_timeout):
            raise CommitFailed(
                f"the commit did not finish within {self._wait_timeout:g}s", None
            )
        if batch.error is not None:
            raise CommitFailed("the batch could not be committed", batch.error)

    def _next_batch(self) -> _Batch[T] | None:
        with self._cond:
            while not self._full and not self._open.items and not self._closed:
                self._cond.wait()
            if self._full:
                return self._full.popleft()
            if self._open.items:
                batch = self._open
                self._open = _Batch()
                return batch
            return None

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._commit(batch.items)
            except Exception as exc:  # every failure must reach the waiting callers
                _log.error("group commit of %d items failed: %s", len(batch.items), exc)
                _log.debug("group commit failure detail", exc_info=True)
                batch.error = exc
            batch.done.set()

    def close(self, timeout: timedelta = timedelta(seconds=30)) -> None:
        """Refuse new items, commit what is queued, and stop the committer thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout.total_seconds())
        if self._thread.is_alive():
            _log.warning("group committer did not stop within %ss", timeout.total_seconds())
