"""Seed corpora for the fuzzers: valid inputs give libFuzzer a structure to mutate."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["run_or_write_seeds"]


def _write(directory: Path, samples: Iterable[bytes]) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for sample in samples:
        (directory / hashlib.sha1(sample).hexdigest()).write_bytes(sample)  # noqa: S324 (a name)
        count += 1
    return count


def run_or_write_seeds(
    seeds: Callable[[], Iterable[bytes]], fuzz: Callable[[list[str]], None]
) -> None:
    """``--seed-corpus DIR`` writes the seeds and exits; anything else is passed to libFuzzer."""
    if len(sys.argv) == 3 and sys.argv[1] == "--seed-corpus":
        written = _write(Path(sys.argv[2]), seeds())
        print(f"wrote {written} seed inputs to {sys.argv[2]}")
        return
    fuzz(sys.argv)
