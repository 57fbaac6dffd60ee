from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest

from citadel.ca.group_commit import CommitFailed, GroupCommitter


class Writer:
    """Records batches; while ``gate`` is cleared, a commit waits inside the writer."""

    def __init__(self, *, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, batch: Sequence[int]) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        if self.fail:
            raise RuntimeError("disk on fire")
        self.batches.append(list(batch))


def _wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def _queued(committer: GroupCommitter[int]) -> int:
    return committer.queued()


def _submit_in_threads(committer: GroupCommitter[int], items: Sequence[int]) -> list[object]:
    outcomes: list[object] = [None] * len(items)

    def run(index: int, item: int) -> None:
        try:
            committer.submit(item)
            outcomes[index] = "ok"
        except CommitFailed as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i, x)) for i, x in enumerate(items)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
        assert not thread.is_alive()
    return outcomes


def test_a_single_caller_commits_a_batch_of_one() -> None:
    writer = Writer()
    committer: GroupCommitter[int] = GroupCommitter(writer)
    try:
        committer.submit(7)
        committer.submit(8)
    finally:
        committer.close()
    assert writer.batches == [[7], [8]]


def test_callers_arriving_during_a_commit_share_the_next_batch() -> None:
    writer = Writer()
    committer: GroupCommitter[int] = GroupCommitter(writer)
    writer.gate.clear()
    first = threading.Thread(target=committer.submit, args=(0,))
    first.start()
    assert writer.entered.wait(5)  # batch [0] is being written and held
    waiting = threading.Thread(target=lambda: _submit_in_threads(committer, range(1, 21)))
    waiting.start()
    _wait_until(lambda: _queued(committer) == 20)  # all queued behind the held commit
    writer.gate.set()
    first.join(10)
    waiting.join(20)
    committer.close()
    assert writer.batches[0] == [0]
    assert sorted(writer.batches[1]) == list(range(1, 21))
    assert len(writer.batches) == 2


def test_no_caller_returns_before_its_item_is_committed() -> None:
    committed: set[int] = set()
    lock = threading.Lock()

    def write(batch: Sequence[int]) -> None:
        with lock:
            committed.update(batch)

    committer: GroupCommitter[int] = GroupCommitter(write)
    seen_uncommitted: list[int] = []

    def call(item: int) -> None:
        committer.submit(item)
        with lock:
            if item not in committed:
                seen_uncommitted.append(item)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    committer.close()
    assert seen_uncommitted == []
    assert committed == set(range(50))


def test_a_failed_commit_fails_every_caller_of_that_batch() -> None:
    writer = Writer(fail=True)
    committer: GroupCommitter[int] = GroupCommitter(writer)
    try:
        outcomes = _submit_in_threads(committer, range(10))
    finally:
        committer.close()
    assert all(isinstance(o, CommitFailed) for o in outcomes)
    assert all(isinstance(o.cause, RuntimeError) for o in outcomes if isinstance(o, CommitFailed))
    assert writer.batches == []


def test_the_committer_keeps_working_after_a_failed_batch() -> None:
    writer = Writer(fail=True)
    committer: GroupCommitter[int] = GroupCommitter(writer)
    try:
        with pytest.raises(CommitFailed):
            committer.submit(1)
        writer.fail = False
        committer.submit(2)
    finally:
        committer.close()
    assert writer.batches == [[2]]


def test_batches_never_exceed_max_batch() -> None:
    writer = Writer()
    committer: GroupCommitter[int] = GroupCommitter(writer, max_batch=3)
    writer.gate.clear()
    holder = threading.Thread(target=committer.submit, args=(-1,))
    holder.start()
    assert writer.entered.wait(5)
    others = threading.Thread(target=lambda: _submit_in_threads(committer, range(10)))
    others.start()
    _wait_until(lambda: _queued(committer) == 10)
    writer.gate.set()
    holder.join(10)
    others.join(20)
    committer.close()
    assert max(len(b) for b in writer.batches) <= 3
    assert sorted(x for b in writer.batches for x in b) == [-1, *range(10)]


def test_a_commit_that_does_not_finish_in_time_fails_the_caller() -> None:
    writer = Writer()
    writer.gate.clear()
    committer: GroupCommitter[int] = GroupCommitter(
        writer, wait_timeout=timedelta(milliseconds=100)
    )
    try:
        with pytest.raises(CommitFailed, match="did not finish") as caught:
            committer.submit(1)
        assert caught.value.cause is None
    finally:
        writer.gate.set()
        committer.close()


def test_close_commits_what_is_queued_and_refuses_new_items() -> None:
    writer = Writer()
    committer: GroupCommitter[int] = GroupCommitter(writer)
    committer.submit(1)
    committer.close()
    assert committer.closed
    with pytest.raises(CommitFailed, match="closed"):
        committer.submit(2)
    assert writer.batches == [[1]]
    assert not committer._thread.is_alive()


def test_max_batch_below_one_is_misuse() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        GroupCommitter(Writer(), max_batch=0)
