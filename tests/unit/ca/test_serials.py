from __future__ import annotations

import os
import threading

import pytest

from citadel.ca import serials
from citadel.ca.serials import next_serial


def test_serials_are_positive_128_bit_and_distinct() -> None:
    drawn = [next_serial() for _ in range(2000)]  # several refills
    assert all(0 < s < 2**128 for s in drawn)
    assert len(set(drawn)) == len(drawn)
    assert max(drawn).bit_length() > 120  # random, not counting up


def test_threads_never_receive_the_same_serial() -> None:
    per_thread: list[list[int]] = [[] for _ in range(8)]

    def draw(out: list[int]) -> None:
        out.extend(next_serial() for _ in range(1000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in per_thread]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    everything = [s for out in per_thread for s in out]
    assert len(everything) == 8000
    assert len(set(everything)) == 8000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_reuse_the_parents_buffered_serials() -> None:
    next_serial()  # make sure the buffer holds serials the parent will hand out
    buffered = set(serials._ready)
    assert buffered
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report whether its first serial came from the parent's buffer
        try:
            os.write(write_end, b"reused" if next_serial() in buffered else b"fresh")
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        answer = os.read(read_end, 16)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    assert answer == b"fresh"
