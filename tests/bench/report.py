"""The benchmark result protocol, and the one report ``make bench`` prints and writes.

A benchmark module reports **figures**: one measured value of one run, with its unit, the
direction that is better and, when the project has one, its target::

    Figure(section="CSR API", name="citadel single CSR @8: CSR/s", unit="CSR/s",
           value=1234.0, better="higher", target=Target(">=", 1000.0))

A module that measures several runs itself may report the spread it saw (``low``/``high``,
e.g. a per-run ratio's min and max) next to the median in ``value``. A ratio is always
computed inside one run (both sides measured in that run), never across runs.

Modules opt in with an optional function next to ``main(argv)``::

    def results(argv: Sequence[str]) -> list[Figure]: ...   # one run, figures only

For modules without it, :mod:`tests.bench.report_parsers` reads the table ``main`` prints.
The runner (``python -m tests.bench``) repeats each module, and :func:`aggregate` turns the
figures of all runs into rows: the median over runs, the min and max seen, pass or fail
against the target (judged on the median). The rows go to the terminal as one table, to
``tests/bench/results/bench.json`` and, as a chart, to ``tests/bench/results/bench.png``.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "Figure",
    "Row",
    "Target",
    "aggregate",
    "figures_from_json",
    "figures_to_json",
    "format_table",
    "write_json",
    "write_png",
]

Better = Literal["higher", "lower"]
CHART_CAP = 3.0


@dataclass(frozen=True, slots=True)
class Target:
    """``op`` is ``>=`` or ``<=``; a row passes when its median satisfies it."""

    op: Literal[">=", "<="]
    bound: float

    def met(self, value: float) -> bool:
        if math.isnan(value):
            return False
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def __str__(self) -> str:
        return f"{self.op} {_number(self.bound)}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Figure:
    """One value of one run (``low``/``high``: a spread the module measured itself)."""

    section: str
    name: str
    unit: str
    value: float
    better: Better = "higher"
    target: Target | None = None
    low: float | None = None
    high: float | None = None
    note: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class Row:
    """A figure over all runs."""

    section: str
    name: str
    unit: str
    median: float
    min: float
    max: float
    runs: int
    better: Better
    target: Target | None = None
    note: str = ""
    values: tuple[float, ...] = field(default=())

    @property
    def passed(self) -> bool | None:
        return None if self.target is None else self.target.met(self.median)

    @property
    def verdict(self) -> str:
        return {None: "", True: "pass", False: "FAIL"}[self.passed]


# --- transport between the child running a module and the runner ------------------------------
def figures_to_json(figures: Iterable[Figure]) -> list[dict[str, Any]]:
    return [asdict(f) for f in figures]


def figures_from_json(items: Iterable[Mapping[str, Any]]) -> list[Figure]:
    out = []
    for item in items:
        target = item.get("target")
        out.append(
            Figure(
                **{k: v for k, v in item.items() if k != "target"},
                target=Target(target["op"], float(target["bound"])) if target else None,
            )
        )
    return out


# --- aggregation ---------------------------------------------------------------------------
def _finite(values: Iterable[float | None]) -> list[float]:
    return [v for v in values if v is not None and not math.isnan(v)]


def aggregate(runs: Sequence[Sequence[Figure]], *, order: Sequence[str] = ()) -> list[Row]:
    """Rows from the figures of every run, keyed by (section, name), in first-seen order
    (sections listed in ``order`` first)."""
    grouped: dict[tuple[str, str], list[Figure]] = {}
    for figures in runs:
        for figure in figures:
            grouped.setdefault((figure.section, figure.name), []).append(figure)
    rows = []
    for (section, name), figures in grouped.items():
        values = _finite(f.value for f in figures)
        lows = _finite([*(f.low for f in figures), *values])
        highs = _finite([*(f.high for f in figures), *values])
        first = figures[0]
        rows.append(
            Row(
                section=section,
                name=name,
                unit=first.unit,
                median=statistics.median(values) if values else math.nan,
                min=min(lows) if lows else math.nan,
                max=max(highs) if highs else math.nan,
                runs=len(figures),
                better=first.better,
                target=first.target,
                note=first.note,
                values=tuple(values),
            )
        )
    rank = {section: i for i, section in enumerate(order)}
    return sorted(rows, key=lambda r: rank.get(r.section, len(rank)))


# --- output --------------------------------------------------------------------------------
def _number(value: float) -> str:
    if math.isnan(value):
        return "-"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if magnitude >= 0.1 or value == 0 else f"{value:.3f}"


def format_table(rows: Sequence[Row], missing: Sequence[tuple[str, str]] = ()) -> str:
    """One table: section, figure, median, min..max, unit, runs, target, verdict; then the
    figures that were not measured, with why."""
    header = ("figure", "median", "min", "max", "unit", "runs", "target", "")
    body: list[tuple[str, ...]] = []
    section = None
    for row in rows:
        if row.section != section:
            section = row.section
            body.append((f"[{section}]", "", "", "", "", "", "", ""))
        body.append(
            (
                f"  {row.name}",
                _number(row.median),
                _number(row.min),
                _number(row.max),
                row.unit,
                str(row.runs),
                str(row.target) if row.target else "",
                row.verdict,
            )
        )
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    align = ["<", ">", ">", ">", "<", ">", "<", "<"]

    def render(line: tuple[str, ...]) -> str:
        return "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(line, align, widths, strict=True))

    lines = [render(header), render(tuple("-" * w for w in widths))]
    lines.extend(render(line).rstrip() for line in body)
    for what, why in missing:
        lines.append(f"not measured: {what} ({why})")
    return "\n".join(lines)


def write_json(rows: Sequence[Row], meta: Mapping[str, Any], path: Path) -> None:
    document = {
        "meta": dict(meta),
        "rows": [
            {
                "section": r.section,
                "name": r.name,
                "unit": r.unit,
                "median": _json_number(r.median),
                "min": _json_number(r.min),
                "max": _json_number(r.max),
                "runs": r.runs,
                "values": [_json_number(v) for v in r.values],
                "better": r.better,
                "target": {"op": r.target.op, "bound": r.target.bound} if r.target else None,
                "pass": r.passed,
                "note": r.note,
            }
            for r in rows
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def _json_number(value: float) -> float | None:
    return None if math.isnan(value) else value


def write_png(rows: Sequence[Row], title: str, path: Path) -> bool:
    """A chart of every row that has a target: median / target as a bar (min..max as the
    whisker), so that 1.0 is the target for every unit. False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    charted = [
        r for r in rows if r.target is not None and r.target.bound and not math.isnan(r.median)
    ]

    def score(row: Row, value: float) -> float:
        assert row.target is not None
        if row.target.op == ">=":
            return value / row.target.bound
        return row.target.bound / value if value > 0 else math.inf

    labels = [f"{r.section.split(' (')[0].split(':')[0]}: {r.name}" for r in charted]
    medians = [score(r, r.median) for r in charted]
    worst = [score(r, r.min if r.better == "higher" else r.max) for r in charted]
    best = [score(r, r.max if r.better == "higher" else r.min) for r in charted]
    height = max(3.0, 0.3 * len(charted) + 1.4)
    figure, axes = plt.subplots(figsize=(13, height))
    positions = list(range(len(charted)))[::-1]
    colours = ["#3a7d44" if r.passed else "#b23a48" for r in charted]
    cap = CHART_CAP
    axes.barh(positions, [min(m, cap) for m in medians], color=colours, height=0.6)
    for y, low, high in zip(positions, worst, best, strict=True):
        axes.plot([min(low, cap), min(high, cap)], [y, y], color="black", linewidth=1)
    for y, row, m, high in zip(positions, charted, medians, best, strict=True):
        axes.text(
            min(max(m, high), cap) + 0.03,
            y,
            f"{_number(row.median)} {row.unit} (target {row.target})",
            va="center",
            ha="left",
            fontsize=7,
        )
    axes.axvline(1.0, color="black", linestyle="--", linewidth=1)
    axes.set_xlim(0, cap + 0.9)
    axes.set_yticks(positions, labels, fontsize=7)
    axes.set_xlabel(
        "margin over the target: measured / target, or target / measured where lower is "
        f"better\n(1 = the target; capped at {cap:g}; bar = median, line = min..max over runs)",
        fontsize=8,
    )
    axes.set_title(title, fontsize=9)
    figure.subplots_adjust(left=0.42, right=0.98, top=1 - 0.6 / height, bottom=1.0 / height)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
