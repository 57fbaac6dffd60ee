"""``python -m tests.bench`` (``make bench``): run every ``bench_*.py`` here and print its table.

Each benchmark module exposes ``main(argv) -> int`` and prints its own table; this runner
calls them with no arguments (their defaults), one after another, and fails if any fails.
Pass module names (``bench_signing``) to run only those.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(HERE)])
        if info.name.startswith("bench_")
    )


def run(names: Sequence[str]) -> int:
    failures = 0
    for name in names:
        module = importlib.import_module(f"{__package__}.{name}")
        entry = getattr(module, "main", None)
        if not callable(entry):
            print(f"== {name}: no main(); skipped", file=sys.stderr)
            continue
        print(f"== {name}")
        started = time.perf_counter()
        try:
            code = entry([])
        except Exception as exc:  # report and go on to the next benchmark
            print(f"== {name} failed: {exc.__class__.__name__}: {exc}", file=sys.stderr)
            code = 1
        print(f"== {name} finished in {time.perf_counter() - started:.1f}s (exit {code or 0})\n")
        failures += 1 if code else 0
    return 1 if failures else 0


def main(argv: Sequence[str]) -> int:
    available = discover()
    wanted = list(argv) or available
    unknown = [n for n in wanted if n not in available]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; have {', '.join(available)}")
        return 2
    return run(wanted)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
