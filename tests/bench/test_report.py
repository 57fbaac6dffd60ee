"""The benchmark report: aggregation over runs, the table, the JSON, and the parsers that
read each module's printed table (checked here on real output, trimmed)."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest

from tests.bench.report import (
    Figure,
    Target,
    aggregate,
    figures_from_json,
    figures_to_json,
    format_table,
    write_json,
    write_png,
)
from tests.bench.report_parsers import PARSERS

SAMPLES = {
    "bench_batch_signing": """
target                         in flight   certs/s    p50 ms    p99 ms  srv cpu ms  errors
cfssl serve                            8      1858      2.81     21.55        0.36       0
citadel single (1 worker)              8       776     10.14     17.92        1.50       0
citadel batch 16 (1 worker)            4      1320     47.07     69.02        0.75       0
""",
    "bench_csr_api": """
cfssl serve                    8      2376     1.91    17.62        0.30        0.15       0
citadel (2 workers)            8       720    10.25    28.17        1.17        0.28       0
""",
    "bench_replicas": """
1 replica                     32       772    40.23    95.54        1.32        0.31       0
2 replicas                    32       947    29.64   114.88        1.07        0.28       0
mass start: 10000/10000 workloads certified in 8.5 s (1176/s; ok, target <= 10 s), p50 241 ms, p99 699 ms, 0 errors
""",  # noqa: E501
    "bench_signing": """
bare cryptography, 1 thread                                   4907      4721      4988
bare cryptography, 16 threads                                 3998      3730      4544
citadel issuer + durable SQLite audit, 16 threads             2030      1713      2076
ratio citadel / faster bare, per run: median 0.42, min 0.35, max 0.43 (is BELOW the 0.8 target)
""",
    "bench_sds": """
rotation latency p50 (cache -> new handshake)       4.6 ms  <= 10 ms OK
  p90 / max                                     4.7/4.7 ms
  samples / handshakes / failed handshakes   5/28/0
SDS streams open (SotW + Delta)                      1000
rotation pushed to all streams (last)               66 ms  <= 1000 ms OK
agent RSS with the streams open                   71.6 MB  <= 150 MB OK
  idle / after the push                      65.4/72.2 MB
""",
    "bench_workload_api": """
FetchX509SVID                         200     1.10     1.29     4.58     4.98
FetchX509SVID (new connection)         50     1.57     1.73     3.22     3.22
""",
    "bench_authz": """
targeted    engine         4.6      8.3    111.0      4.8    14.8%
untargeted  enforcer      14.1     65.3    265.1     16.0    14.8%
""",
    "bench_ext_authz": """
with ext_authz                                    0.995    2.140   (200 requests)
without (per-route disabled)                      0.435    0.604   (200 requests)
ext_authz overhead (difference)                   0.560    1.536   p50 <= 1.5 ms OK
""",
    "bench_rotation": """
steady state                                  1322      1322      1322
while rotating the root                       1314      1314      1314
ratio rotating / steady (medians): 0.99; 0 rotation steps (one per 0.25 s) during the rotating runs; chains failing their own bundle: 0
revoke -> refused by is_certificate_revoked: median 101 ms, max 102 ms; -> listed in a CRL: median 101 ms, max 102 ms (3 samples)
revoke -> first refused Envoy handshake (defaults): median 2.92 s, max 2.92 s (1 samples; target <= 5 s)
""",  # noqa: E501
    "bench_store": """
backend=sqlite rows_per_size=256
batch=  1        2560 rows/s
verify_audit_chain: ok=True events=1024 0.05s
""",
}
EXPECTED = {  # (module, a figure name, its value, its target or None)
    "bench_batch_signing": ("citadel batch 16 (1 worker) / best cfssl (same run)", 1320 / 1858,
                            ">= 1.5"),
    "bench_csr_api": ("citadel (2 workers) / cfssl @8 (same run)", 720 / 2376, ">= 0.6"),
    "bench_replicas": ("mass bootstrap of 10,000 workloads: time to the last certificate", 8.5,
                       "<= 10"),
    "bench_signing": ("citadel / faster bare (per run)", 0.42, ">= 0.8"),
    "bench_sds": ("agent memory (RSS) with 1,000 streams open", 71.6, "<= 150"),
    "bench_workload_api": ("FetchX509SVID: p99", 4.58, "<= 5"),
    "bench_authz": ("engine, 100 policies targeted: p99", 8.3, "<= 100"),
    "bench_ext_authz": ("overhead per request, p50 (same run)", 0.56, "<= 1.5"),
    "bench_rotation": ("CSR throughput, while rotating the root", 1314, None),
    "bench_store": ("sqlite: record_issuances, batch of 1", 2560, None),
}  # fmt: skip


def _figure(value: float, **kw: object) -> Figure:
    fields: dict[str, object] = {"section": "s", "name": "n", "unit": "ms", "value": value}
    fields.update(kw)
    return Figure(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("module", sorted(SAMPLES), ids=str)
def test_each_module_output_is_read_into_figures(module: str) -> None:
    figures = PARSERS[module](SAMPLES[module], importlib.import_module(f"tests.bench.{module}"))
    name, value, target = EXPECTED[module]
    found = {f.name: f for f in figures}
    assert name in found, sorted(found)
    assert found[name].value == pytest.approx(value, rel=1e-3)
    if target is None:
        assert found[name].target is None
    else:
        op, bound = target.split()
        assert found[name].target == Target(op, float(bound))  # type: ignore[arg-type]


def test_a_changed_line_gives_no_figure_rather_than_a_wrong_one() -> None:
    module = importlib.import_module("tests.bench.bench_sds")
    assert PARSERS["bench_sds"]("rotation latency median: 4.6 ms", module) == []


def test_rows_are_medians_over_runs_with_the_spread_each_run_saw() -> None:
    runs = [
        [_figure(10.0, target=Target("<=", 12.0), better="lower")],
        [_figure(30.0, target=Target("<=", 12.0), better="lower")],
        [_figure(11.0, low=9.0, high=40.0, target=Target("<=", 12.0), better="lower")],
    ]
    [row] = aggregate(runs)
    assert (row.median, row.min, row.max, row.runs) == (11.0, 9.0, 40.0, 3)
    assert row.passed is True and row.verdict == "pass"


def test_a_missed_target_and_nan_runs() -> None:
    [row] = aggregate([[_figure(math.nan, target=Target(">=", 1.0))], [_figure(0.5,
                      target=Target(">=", 1.0))]])  # fmt: skip
    assert row.median == 0.5 and row.runs == 2
    assert row.passed is False and row.verdict == "FAIL"


def test_figures_survive_the_trip_from_the_child_process() -> None:
    figures = [_figure(1.5, target=Target(">=", 1.0), low=1.0, high=2.0, note="x")]
    assert figures_from_json(json.loads(json.dumps(figures_to_json(figures)))) == figures


def test_the_table_names_sections_targets_and_what_was_not_measured(tmp_path: Path) -> None:
    rows = aggregate(
        [[_figure(4.6, section="SDS", name="rotation p50", target=Target("<=", 10.0))]],
        order=["SDS"],
    )
    table = format_table(rows, [("agent memory", "bench_sds gave no such figure")])
    assert "[SDS]" in table and "rotation p50" in table and "<= 10.0" in table
    assert table.splitlines()[-1] == "not measured: agent memory (bench_sds gave no such figure)"
    write_json(rows, {"mode": "test"}, tmp_path / "bench.json")
    document = json.loads((tmp_path / "bench.json").read_text())
    assert document["rows"][0]["pass"] is True and document["meta"] == {"mode": "test"}
    if write_png(rows, "test", tmp_path / "bench.png"):
        assert (tmp_path / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
