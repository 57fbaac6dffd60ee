"""``python -m tests.fuzz`` (``make fuzz``): run every atheris harness for a while.

Each ``fuzz_*.py`` gets its own corpus (seeded from the harness's valid inputs, kept
between runs under ``--workdir``), its dictionary when one exists, and ``--seconds`` of
fuzzing, one harness after the other (a 2-core machine is shared). Crashing inputs are
written to ``<workdir>/crashes/<harness>/``; the run fails if any harness found one.
Turn every crash into a regression case (tests/fixtures/crashers/<target>/ and a
``test_fuzz_regressions*`` test) before fixing it.

    python -m tests.fuzz [--seconds 60] [--workdir /tmp/citadel-fuzz] [csr sds ...]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DICTIONARIES = {
    "jwt_svid": "jwt.dict",
    "jwt_verifier": "jwt.dict",
    "workload_api": "jwt.dict",
    "policy": "policy.dict",
}
_PROGRESS = re.compile(r"^#(\d+)\s", re.MULTILINE)


def harnesses() -> list[str]:
    return sorted(p.stem.removeprefix("fuzz_") for p in HERE.glob("fuzz_*.py"))


def run_one(name: str, seconds: int, workdir: Path) -> tuple[int, list[Path]]:
    """Fuzz one harness; returns (executions, crash files)."""
    script = HERE / f"fuzz_{name}.py"
    corpus = workdir / "corpus" / name
    crashes = workdir / "crashes" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    subprocess.run(
        [sys.executable, str(script), "--seed-corpus", str(corpus)],
        check=True, cwd=ROOT, capture_output=True, timeout=300,
    )  # fmt: skip
    command = [
        sys.executable, str(script), str(corpus), f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/", "-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1",
    ]  # fmt: skip
    if name in DICTIONARIES:
        command.append(f"-dict={HERE / 'dicts' / DICTIONARIES[name]}")
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        subprocess.run(
            command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, timeout=seconds + 300,
            check=False,
        )  # fmt: skip
    text = log.read_text(errors="replace")
    runs = max((int(m) for m in _PROGRESS.findall(text)), default=0)
    return runs, sorted(set(crashes.iterdir()) - before)


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", help=f"harnesses (default: all of {harnesses()})")
    parser.add_argument("--seconds", type=int, default=60, help="per harness")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/citadel-fuzz"))
    args = parser.parse_args(list(argv))
    names = args.names or harnesses()
    unknown = sorted(set(names) - set(harnesses()))
    if unknown:
        parser.error(f"unknown harness(es): {', '.join(unknown)}")
    failed = False
    print(f"{'harness':<14} {'runs':>10} {'runs/s':>8} {'crashes':>8}")
    for name in names:
        started = time.monotonic()
        runs, crashes = run_one(name, args.seconds, args.workdir)
        elapsed = max(1e-9, time.monotonic() - started)
        print(f"{name:<14} {runs:>10} {runs / elapsed:>8.0f} {len(crashes):>8}", flush=True)
        for crash in crashes:
            print(f"  crash: {crash} (log: {args.workdir / (name + '.log')})")
        failed = failed or bool(crashes)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
