"""Figures read from what each benchmark's ``main`` prints, for modules without ``results()``.

One parser per module, keyed by its name. A parser reads only the lines it recognises; a
line whose format changed yields no figure (the report then says "not measured"), never a
wrong one. Targets come from the module's own constants when it has them, so they stay in
step with the module. Ratios are computed here from figures of the same run.

Every module that gains ``results(argv) -> list[Figure]`` (see :mod:`tests.bench.report`)
no longer needs its parser.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import ModuleType

from tests.bench.report import Figure, Target

__all__ = ["PARSERS", "SECTIONS"]

_N = r"(nan|-?[\d,]*\.?\d+)"
SECTIONS = (
    "CSR API vs cfssl (single and batch RPCs)",
    "CSR API vs cfssl (in flight, workers)",
    "In-process signing vs bare cryptography",
    "SDS: rotation at a real Envoy, 1,000 streams",
    "Workload API fetch latency (warm)",
    "CA replicas and mass bootstrap",
    "Authorization decisions",
    "ext_authz overhead (real Envoy)",
    "Rotation and revocation",
    "Store",
)


def _f(text: str) -> float:
    return float("nan") if text == "nan" else float(text.replace(",", ""))


def _const(module: ModuleType, name: str, default: float) -> float:
    value = getattr(module, name, default)
    return float(value) if isinstance(value, int | float) else default


def _row_lines(text: str, label: str, columns: int) -> list[tuple[str, list[float]]]:
    """Lines ``<label> n1 n2 ...`` (exactly ``columns`` numbers); label is a regex."""
    pattern = re.compile(rf"^({label})\s+" + r"\s+".join([_N] * columns) + r"\s*$", re.MULTILINE)
    return [(m.group(1).strip(), [_f(x) for x in m.groups()[1:]]) for m in pattern.finditer(text)]


# --- CSR API ---------------------------------------------------------------------------------
def parse_batch_signing(text: str, module: ModuleType) -> list[Figure]:
    """cfssl, citadel single CSR and batch calls, certificates/s and latency, one run."""
    section = SECTIONS[0]
    ratio_target = _const(module, "RATIO_TARGET", 1.5)
    rows = _row_lines(text, r"cfssl serve|citadel single.*?|citadel batch.*?", 6)
    figures: list[Figure] = []
    cfssl: dict[int, float] = {}
    single: dict[tuple[str, int], float] = {}
    batches: dict[str, float] = {}
    for label, (inflight, rate, p50, p99, _cpu, errors) in rows:
        name = f"{label} @{inflight:.0f}"
        figures += [
            Figure(section=section, name=f"{name}: certificates/s", unit="cert/s", value=rate),
            Figure(section=section, name=f"{name}: p50", unit="ms", value=p50, better="lower"),
            Figure(section=section, name=f"{name}: p99", unit="ms", value=p99, better="lower"),
        ]
        if errors:
            figures.append(
                Figure(
                    section=section,
                    name=f"{name}: errors",
                    unit="calls",
                    value=errors,
                    better="lower",
                    target=Target("<=", 0),
                )
            )
        if label == "cfssl serve":
            cfssl[int(inflight)] = rate
        elif label.startswith("citadel batch"):
            batches[label] = rate
        else:
            single[(label, int(inflight))] = rate
    best_cfssl = max(cfssl.values(), default=0.0)
    for label, rate in batches.items():
        if best_cfssl:
            figures.append(
                Figure(
                    section=section,
                    name=f"{label} / best cfssl (same run)",
                    unit="x",
                    value=rate / best_cfssl,
                    target=Target(">=", ratio_target),
                )
            )
    for (label, inflight), rate in single.items():
        if cfssl.get(inflight):
            figures.append(
                Figure(
                    section=section,
                    name=f"{label} / cfssl @{inflight} (same run)",
                    unit="x",
                    value=rate / cfssl[inflight],
                )
            )
    return figures


def parse_csr_api(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[1]
    ratio_target = _const(module, "RATIO_TARGET", 0.6)
    p99_target = _const(module, "P99_TARGET_MS", 10.0)
    figures: list[Figure] = []
    cfssl: dict[int, float] = {}
    citadel: dict[tuple[str, int], float] = {}
    for label, (inflight, rate, p50, p99, _srv, _load, _errors) in _row_lines(
        text, r"cfssl serve|citadel \(\d+ workers?\)", 7
    ):
        name = f"{label} @{inflight:.0f}"
        figures += [
            Figure(section=section, name=f"{name}: CSR/s", unit="CSR/s", value=rate),
            Figure(section=section, name=f"{name}: p50", unit="ms", value=p50, better="lower"),
            Figure(
                section=section,
                name=f"{name}: p99",
                unit="ms",
                value=p99,
                better="lower",
                target=Target("<=", p99_target)
                if label != "cfssl serve" and inflight == 8
                else None,
            ),
        ]
        if label == "cfssl serve":
            cfssl[int(inflight)] = rate
        else:
            citadel[(label, int(inflight))] = rate
    for (label, inflight), rate in citadel.items():
        if cfssl.get(inflight):
            figures.append(
                Figure(
                    section=section,
                    name=f"{label} / cfssl @{inflight} (same run)",
                    unit="x",
                    value=rate / cfssl[inflight],
                    target=Target(">=", ratio_target),
                )
            )
    return figures


def parse_replicas(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[5]
    rates: dict[str, float] = {}
    figures: list[Figure] = []
    for label, (inflight, rate, _p50, p99, _srv, _load, _errors) in _row_lines(
        text, r"\d+ replicas?", 7
    ):
        rates[label] = rate
        figures += [
            Figure(
                section=section, name=f"{label} @{inflight:.0f}: CSR/s", unit="CSR/s", value=rate
            ),
            Figure(
                section=section,
                name=f"{label} @{inflight:.0f}: p99",
                unit="ms",
                value=p99,
                better="lower",
            ),
        ]
    if rates.get("1 replica") and "2 replicas" in rates:
        figures.append(
            Figure(
                section=section,
                name="2 replicas / 1 replica (same run)",
                unit="x",
                value=rates["2 replicas"] / rates["1 replica"],
                target=Target(">=", _const(module, "SCALE_TARGET", 1.7)),
            )
        )
    mass = re.search(
        rf"mass start: (\d+)/(\d+) workloads certified in {_N} s \({_N}/s.*?p50 {_N} ms, "
        rf"p99 {_N} ms, (\d+) errors",
        text,
    )
    if mass:
        certified, wanted = int(mass.group(1)), int(mass.group(2))
        name = f"mass bootstrap of {wanted:,} workloads"
        figures += [
            Figure(
                section=section,
                name=f"{name}: time to the last certificate",
                unit="s",
                value=_f(mass.group(3)),
                better="lower",
                target=Target("<=", _const(module, "MASS_TARGET_SECONDS", 10.0)),
            ),
            Figure(
                section=section,
                name=f"{name}: certificates/s",
                unit="cert/s",
                value=_f(mass.group(4)),
            ),
            Figure(
                section=section,
                name=f"{name}: p99 per workload",
                unit="ms",
                value=_f(mass.group(6)),
                better="lower",
            ),
            Figure(
                section=section,
                name=f"{name}: not certified",
                unit="workloads",
                value=wanted - certified,
                better="lower",
                target=Target("<=", 0),
            ),
        ]
    return figures


# --- in-process signing ------------------------------------------------------------------------
def parse_signing(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[2]
    figures = [
        Figure(section=section, name=label, unit="cert/s", value=median, low=low, high=high)
        for label, (median, low, high) in _row_lines(
            text, r"bare cryptography, \d+ threads?|citadel .*?threads?", 3
        )
    ]
    ratio = re.search(
        rf"ratio citadel / faster bare, per run: median {_N}, min {_N}, max {_N}", text
    )
    if ratio:
        figures.append(
            Figure(
                section=section,
                name="citadel / faster bare (per run)",
                unit="x",
                value=_f(ratio.group(1)),
                low=_f(ratio.group(2)),
                high=_f(ratio.group(3)),
                target=Target(">=", _const(module, "TARGET", 0.8)),
            )
        )
    return figures


# --- SDS and the agent -------------------------------------------------------------------------
def parse_sds(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[3]
    figures: list[Figure] = []
    latency = re.search(rf"rotation latency p50 \(cache -> new handshake\)\s+{_N} ms", text)
    if latency:
        figures.append(
            Figure(
                section=section,
                name="rotation: cache -> first new handshake, p50",
                unit="ms",
                value=_f(latency.group(1)),
                better="lower",
                target=Target("<=", _const(module, "LATENCY_TARGET_MS", 10.0)),
            )
        )
    spread = re.search(rf"p90 / max\s+{_N}/{_N} ms", text)
    if spread:
        figures += [
            Figure(
                section=section,
                name="rotation: p90",
                unit="ms",
                value=_f(spread.group(1)),
                better="lower",
            ),
            Figure(
                section=section,
                name="rotation: max",
                unit="ms",
                value=_f(spread.group(2)),
                better="lower",
            ),
        ]
    failed = re.search(r"samples / handshakes / failed handshakes\s+(\d+)/(\d+)/(\d+)", text)
    if failed:
        figures.append(
            Figure(
                section=section,
                name="rotation: failed handshakes",
                unit="handshakes",
                value=float(failed.group(3)),
                better="lower",
                target=Target("<=", 0),
            )
        )
    streams = re.search(r"SDS streams open \(SotW \+ Delta\)\s+(\d+)", text)
    pushed = re.search(rf"rotation pushed to all streams \(last\)\s+{_N} ms", text)
    count = f"{int(streams.group(1)):,} streams" if streams else "all streams"
    if pushed:
        figures.append(
            Figure(
                section=section,
                name=f"push to {count}: last received",
                unit="ms",
                value=_f(pushed.group(1)),
                better="lower",
                target=Target("<=", _const(module, "PUSH_TARGET_S", 1.0) * 1000),
            )
        )
    rss = re.search(rf"agent RSS with the streams open\s+{_N} MB", text)
    if rss:
        figures.append(
            Figure(
                section=section,
                name=f"agent memory (RSS) with {count} open",
                unit="MB",
                value=_f(rss.group(1)),
                better="lower",
                target=Target("<=", _const(module, "RSS_TARGET_MB", 150.0)),
            )
        )
    idle = re.search(rf"idle / after the push\s+{_N}/{_N} MB", text)
    if idle:
        figures.append(
            Figure(
                section=section,
                name="agent memory (RSS) idle",
                unit="MB",
                value=_f(idle.group(1)),
                better="lower",
            )
        )
    return figures


def parse_workload_api(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[4]
    target = _const(module, "TARGET_P99_MS", 5.0)
    figures: list[Figure] = []
    for name, (_calls, median, _p90, p99, _max) in _row_lines(
        text, r"Fetch\w+(?: \(new connection\))?", 5
    ):
        figures += [
            Figure(section=section, name=f"{name}: p50", unit="ms", value=median, better="lower"),
            Figure(
                section=section,
                name=f"{name}: p99",
                unit="ms",
                value=p99,
                better="lower",
                target=None if "new connection" in name else Target("<=", target),
            ),
        ]
    return figures


# --- authorization ---------------------------------------------------------------------------
def parse_authz(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[6]
    target = _const(module, "TARGET_P99_US", 100.0)
    figures: list[Figure] = []
    pattern = re.compile(
        rf"^(targeted|untargeted)\s+(engine|enforcer)\s+{_N}\s+{_N}\s+{_N}\s+{_N}\s+", re.MULTILINE
    )
    for match in pattern.finditer(text):
        layout, path = match.group(1), match.group(2)
        p50, p99 = _f(match.group(3)), _f(match.group(4))
        name = f"{path}, 100 policies {layout}"
        figures += [
            Figure(section=section, name=f"{name}: p50", unit="us", value=p50, better="lower"),
            Figure(
                section=section,
                name=f"{name}: p99",
                unit="us",
                value=p99,
                better="lower",
                target=Target("<=", target) if path == "engine" else None,
            ),
        ]
    return figures


def parse_ext_authz(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[7]
    figures: list[Figure] = []
    for label, name in (("with ext_authz", "with ext_authz"), ("without", "without (bypassed)")):
        row = re.search(rf"^{label}.*?\s{_N}\s+{_N}\s+\(\d+ requests\)", text, re.MULTILINE)
        if row:
            figures.append(
                Figure(
                    section=section,
                    name=f"request {name}: p50",
                    unit="ms",
                    value=_f(row.group(1)),
                    better="lower",
                )
            )
    overhead = re.search(rf"ext_authz overhead \(difference\)\s+{_N}\s+{_N}", text)
    if overhead:
        figures += [
            Figure(
                section=section,
                name="overhead per request, p50 (same run)",
                unit="ms",
                value=_f(overhead.group(1)),
                better="lower",
                target=Target("<=", _const(module, "OVERHEAD_TARGET_MS", 1.5)),
            ),
            Figure(
                section=section,
                name="overhead per request, p99 (same run)",
                unit="ms",
                value=_f(overhead.group(2)),
                better="lower",
            ),
        ]
    return figures


# --- rotation and the store --------------------------------------------------------------------
def parse_rotation(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[8]
    figures = [
        Figure(
            section=section,
            name=f"CSR throughput, {label}",
            unit="cert/s",
            value=median,
            low=low,
            high=high,
        )
        for label, (median, low, high) in _row_lines(
            text, r"steady state|while rotating the root", 3
        )
    ]
    ratio = re.search(rf"ratio rotating / steady \(medians\): {_N}.*?own bundle: (\d+)", text)
    if ratio:
        figures += [
            Figure(
                section=section,
                name="rotating / steady (same run)",
                unit="x",
                value=_f(ratio.group(1)),
            ),
            Figure(
                section=section,
                name="chains failing their own bundle while rotating",
                unit="chains",
                value=float(ratio.group(2)),
                better="lower",
                target=Target("<=", 0),
            ),
        ]
    revoked = re.search(
        rf"is_certificate_revoked: median {_N} ms, max {_N} ms; -> listed in a CRL: median {_N} ms",
        text,
    )
    if revoked:
        figures += [
            Figure(
                section=section,
                name="revoke -> refused by the serving process, median",
                unit="ms",
                value=_f(revoked.group(1)),
                better="lower",
            ),
            Figure(
                section=section,
                name="revoke -> listed in a CRL, median",
                unit="ms",
                value=_f(revoked.group(3)),
                better="lower",
            ),
        ]
    envoy = re.search(rf"first refused Envoy handshake.*?: median {_N} s, max {_N} s", text)
    if envoy:
        figures.append(
            Figure(
                section=section,
                name="revoke -> first refused Envoy handshake, median",
                unit="s",
                value=_f(envoy.group(1)),
                better="lower",
                target=Target("<=", 5.0),
            )
        )
    return figures


def parse_store(text: str, module: ModuleType) -> list[Figure]:
    section = SECTIONS[9]
    backend = re.search(r"backend=(\w+)", text)
    where = backend.group(1) if backend else "store"
    figures = [
        Figure(
            section=section,
            name=f"{where}: record_issuances, batch of {m.group(1)}",
            unit="rows/s",
            value=_f(m.group(2)),
        )
        for m in re.finditer(rf"batch=\s*(\d+)\s+{_N} rows/s", text)
    ]
    verify = re.search(rf"verify_audit_chain: ok=(\w+) events=(\d+) {_N}s", text)
    if verify:
        events = int(verify.group(2))
        figures.append(
            Figure(
                section=section,
                name=f"verify_audit_chain ({events:,} events)",
                unit="s",
                value=_f(verify.group(3)),
                better="lower",
            )
        )
    return figures


PARSERS: dict[str, Callable[[str, ModuleType], list[Figure]]] = {
    "bench_batch_signing": parse_batch_signing,
    "bench_csr_api": parse_csr_api,
    "bench_replicas": parse_replicas,
    "bench_signing": parse_signing,
    "bench_sds": parse_sds,
    "bench_workload_api": parse_workload_api,
    "bench_authz": parse_authz,
    "bench_ext_authz": parse_ext_authz,
    "bench_rotation": parse_rotation,
    "bench_store": parse_store,
}
