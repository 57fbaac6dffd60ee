"""``python -m tests.bench`` (``make bench``): every benchmark, several runs, ONE report.

Each ``bench_*.py`` module runs in a child process, several times (``--runs``, or its plan's
default; a module that repeats and alternates internally runs once). The child reports the
run's figures (the module's ``results(argv)`` when it has one, else what its ``main``
printed, read by :mod:`tests.bench.report_parsers`). The runner then prints one table of
medians with min/max over the runs and each figure's target, and writes
``tests/bench/results/bench.json`` and ``bench.png`` (and every run's raw output under
``results/raw/``). Ratios are computed inside one run.

    python -m tests.bench                 # the full report (about 10 minutes on 2 cores)
    python -m tests.bench --quick         # smaller runs, 1 each, for a smoke check
    python -m tests.bench bench_authz bench_sds --runs 5

Exit status 1 when a module failed to run or a figure missed its target.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import io
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tests.bench.report import (
    Figure,
    aggregate,
    figures_from_json,
    figures_to_json,
    format_table,
    write_json,
    write_png,
)
from tests.bench.report_parsers import PARSERS, SECTIONS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = HERE / "results"


@dataclass(frozen=True)
class Plan:
    """How to run one module: its arguments and run count, full and quick."""

    full: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    runs: int = 3
    quick_runs: int = 1
    timeout_s: float = 900.0


PLANS: dict[str, Plan] = {
    "bench_batch_signing": Plan(
        ("--seconds", "4", "--warmup", "1"),
        ("--batch", "16", "--cfssl-inflight", "8", "--seconds", "2", "--warmup", "0.5"),
    ),
    "bench_csr_api": Plan(
        ("--inflight", "8,64", "--seconds", "4", "--warmup", "1"),
        ("--inflight", "8", "--seconds", "2", "--warmup", "0.5"),
    ),
    "bench_replicas": Plan(
        ("--seconds", "4", "--warmup", "1"),
        ("--seconds", "2", "--warmup", "0.5", "--workloads", "2000"),
    ),
    # These two alternate their sides and repeat internally: one invocation each.
    "bench_signing": Plan(("--certs", "1000", "--runs", "5"), ("--certs", "300", "--runs", "5"), 1),
    "bench_rotation": Plan(
        ("--certs", "600", "--runs", "3", "--revocations", "5", "--envoy-revocations", "3"),
        ("--certs", "200", "--runs", "1", "--revocations", "3", "--envoy-revocations", "1"),
        1,
    ),
    "bench_sds": Plan(("--samples", "20"), ("--samples", "5", "--connections", "100")),
    "bench_workload_api": Plan(
        ("--calls", "1000", "--warmup", "100"), ("--calls", "200", "--warmup", "20")
    ),
    "bench_authz": Plan(("--decisions", "10000"), ("--decisions", "2000")),
    "bench_ext_authz": Plan(
        ("--requests", "1000", "--warmup", "100"), ("--requests", "200", "--warmup", "20")
    ),
    "bench_store": Plan((), ("--rows", "256")),
}

# What the report must show: (module, section, a piece of the figure's name, what it is).
REQUIRED: tuple[tuple[str, str, str, str], ...] = (
    ("bench_batch_signing", SECTIONS[0], "citadel single", "single CSRs next to cfssl"),
    ("bench_batch_signing", SECTIONS[0], "citadel batch", "batch calls next to cfssl"),
    ("bench_batch_signing", SECTIONS[0], "cfssl serve", "cfssl serve in the same run"),
    ("bench_signing", SECTIONS[2], "citadel / faster bare", "in-process vs bare signing"),
    ("bench_sds", SECTIONS[3], "rotation: cache -> first new handshake", "SDS rotation at Envoy"),
    ("bench_sds", SECTIONS[3], "agent memory (RSS) with", "agent memory with 1,000 streams"),
    ("bench_workload_api", SECTIONS[4], "FetchX509SVID: p99", "Workload API fetch latency"),
    ("bench_replicas", SECTIONS[5], "mass bootstrap", "mass bootstrap of 10,000 workloads"),
    ("bench_authz", SECTIONS[6], "engine, 100 policies", "authz decision latency"),
    ("bench_ext_authz", SECTIONS[7], "overhead per request", "ext_authz overhead"),
    ("bench_rotation", SECTIONS[8], "CSR throughput, while rotating", "rotation throughput"),
)


def discover() -> list[str]:
    return sorted(
        info.name for info in pkgutil.iter_modules([str(HERE)]) if info.name.startswith("bench_")
    )


# --- the child: one run of one module ----------------------------------------------------------
class _Tee(io.TextIOBase):
    def __init__(self, *streams: TextIO) -> None:
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


def run_child(name: str, argv: Sequence[str], out: Path) -> int:
    module = importlib.import_module(f"{__package__}.{name}")
    outcome: dict[str, Any] = {"figures": [], "exit": 0, "error": ""}
    try:
        results = getattr(module, "results", None)
        if callable(results):
            figures: list[Figure] = list(results(list(argv)))
        else:
            captured = io.StringIO()
            with contextlib.redirect_stdout(_Tee(sys.stdout, captured)):
                outcome["exit"] = int(module.main(list(argv)) or 0)
            parser = PARSERS.get(name)
            figures = parser(captured.getvalue(), module) if parser else []
        outcome["figures"] = figures_to_json(figures)
    except SystemExit as exc:  # argparse refusing the plan's arguments, say
        outcome["exit"] = exc.code if isinstance(exc.code, int) else 2
        outcome["error"] = f"exited {exc.code}"
    except Exception as exc:
        outcome["exit"] = 1
        outcome["error"] = f"{type(exc).__name__}: {exc}"[:500]
    out.write_text(json.dumps(outcome))
    return 0


# --- the runner ------------------------------------------------------------------------------
@dataclass
class RunOutcome:
    figures: list[Figure]
    exit: int
    error: str
    seconds: float


def run_once(name: str, argv: Sequence[str], raw: Path, timeout_s: float) -> RunOutcome:
    result_file = raw.with_suffix(".json")
    result_file.unlink(missing_ok=True)
    started = time.monotonic()
    with raw.open("wb") as log:
        try:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "tests.bench",
                    "--child",
                    name,
                    "--json",
                    str(result_file),
                    "--",
                    *argv,
                ],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return RunOutcome([], 1, f"timed out after {timeout_s:.0f}s", timeout_s)
    seconds = time.monotonic() - started
    try:
        outcome = json.loads(result_file.read_text())
    except (OSError, ValueError):
        return RunOutcome([], 1, "the run died before reporting (see its raw log)", seconds)
    return RunOutcome(
        figures_from_json(outcome["figures"]), int(outcome["exit"]), outcome["error"], seconds
    )


def _machine() -> dict[str, Any]:
    import cryptography

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": cpus,
        "python": platform.python_version(),
        "cryptography": cryptography.__version__,
        "platform": platform.platform(),
        "commit": commit or "unknown",
        "load_average_before": os.getloadavg(),
    }


def run(names: Sequence[str], *, quick: bool, runs: int | None, out: Path) -> int:
    raw_dir = out / "raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    meta = {
        **_machine(),
        "mode": "quick" if quick else "full",
        "started": dt.datetime.now(dt.UTC).isoformat(),
    }
    began = time.monotonic()
    all_runs: list[list[Figure]] = []
    broken: list[tuple[str, str]] = []
    for name in names:
        plan = PLANS.get(name, Plan())
        argv = plan.quick if quick else plan.full
        count = runs or (plan.quick_runs if quick else plan.runs)
        for index in range(1, count + 1):
            outcome = run_once(name, argv, raw_dir / f"{name}-run{index}.log", plan.timeout_s)
            status = f"exit {outcome.exit}" + (f", {outcome.error}" if outcome.error else "")
            print(
                f"== {name} run {index}/{count}: {len(outcome.figures)} figures in "
                f"{outcome.seconds:.0f}s ({status})",
                flush=True,
            )
            if outcome.figures:
                all_runs.append(outcome.figures)
            elif outcome.error or outcome.exit:
                broken.append((f"{name} run {index}", outcome.error or f"exit {outcome.exit}"))
    rows = aggregate(all_runs, order=SECTIONS)
    missing = [
        (what, f"{module} gave no such figure; see results/raw/{module}-run*.log")
        for module, section, piece, what in REQUIRED
        if module in names and not any(r.section == section and piece in r.name for r in rows)
    ]
    missing += broken
    meta["seconds"] = round(time.monotonic() - began)
    meta["load_average_after"] = os.getloadavg()
    meta["modules"] = {
        n: list(PLANS.get(n, Plan()).quick if quick else PLANS.get(n, Plan()).full) for n in names
    }
    title = (
        f"Citadel benchmarks ({meta['mode']}, {meta['cpus']} CPUs, commit {meta['commit']}, "
        f"{meta['started'][:16]}Z): median over runs, min-max whiskers"
    )
    print()
    print(title)
    print(format_table(rows, missing))
    judged = [r for r in rows if r.passed is not None]
    met = sum(1 for r in judged if r.passed)
    print(f"\n{met} of {len(judged)} targets met; {len(rows)} figures in {meta['seconds']}s")
    write_json(rows, {**meta, "not_measured": missing}, out / "bench.json")
    charted = write_png(rows, title, out / "bench.png")
    print(
        f"wrote {out / 'bench.json'}"
        + (f" and {out / 'bench.png'}" if charted else " (no chart: matplotlib is not installed)")
    )
    return 1 if broken or met < len(judged) else 0


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("names", nargs="*", help="modules to run (default: every bench_*.py)")
    parser.add_argument("--quick", action="store_true", help="small runs, one each")
    parser.add_argument("--runs", type=int, help="runs per module (default: its plan's)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the report goes")
    argv = list(argv)
    if argv[:1] == ["--child"]:  # internal: --child MODULE --json FILE -- MODULE-ARGS...
        name, _, result_file, separator, *module_argv = argv[1:]
        assert separator == "--", argv
        return run_child(name, module_argv, Path(result_file))
    args = parser.parse_args(argv)
    available = discover()
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}; have {', '.join(available)}")
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return run(args.names or available, quick=args.quick, runs=args.runs, out=args.out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
