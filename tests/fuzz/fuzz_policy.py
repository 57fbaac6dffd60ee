"""Policy loading (citadel.authz.policy_loader): only PolicyError may escape.

The target (inputs, invariants, seeds) is :mod:`tests.fuzz.targets.policy`; the hypothesis
properties and crasher replays share it. Usage: see tests/fuzz/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris  # type: ignore[import-untyped,import-not-found,unused-ignore]

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

with atheris.instrument_imports(include=["citadel", "node_agent"]):
    from tests.fuzz.targets import policy as target

from tests.fuzz._seeds import run_or_write_seeds


def fuzz(argv: list[str]) -> None:
    atheris.Setup(argv, target.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    run_or_write_seeds(target.seeds, fuzz)
