"""Authorization decision latency with 100 generated policies loaded (target: p99 <= 100 us).

Policies are generated as YAML, written to a temporary directory and loaded through the
real loader. Two layouts:

* targeted: 80 ALLOW policies spread over 20 destination workloads (4 each, mixing exact
  and wildcard principals, exact and service-wide gRPC methods, claim and IP conditions),
  plus 15 untargeted DENY and 5 untargeted AUDIT policies;
* untargeted: the same 100 policies with no targets, so every request sees all of them
  (the worst case for the engine's index).

Rows:

* engine: ``AuthzEngine.decide`` on prebuilt request contexts (the pure decision);
* enforcer: ``Enforcer.check`` on access requests (peer identity, context building,
  metrics; INFO logging of denials is switched off for the run).

Each decision is timed on its own with ``perf_counter_ns``; the table shows p50/p99/max.

    python -m tests.bench.bench_authz [--decisions 20000] [--seed 7]
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from citadel.authz.enforcer import AccessRequest, Enforcer
from citadel.authz.engine import AuthzEngine
from citadel.authz.policy_loader import load_policy_dir
from citadel.authz.request import RequestContext
from citadel.identity.clock import SystemClock

TARGET_P99_US = 100.0
TD = "bench.local"
SERVICES = 20
METHODS = ("Get", "List", "Put", "Delete", "Watch")


def _workload(i: int) -> str:
    return f"spiffe://{TD}/ns/ns{i % 10}/sa/svc{i}"


def _document(name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {
            "apiVersion": "authz.citadel/v1",
            "kind": "AuthorizationPolicy",
            "metadata": {"name": name},
            "spec": spec,
        }
    )


def generate_policies(rng: random.Random, *, targeted: bool) -> list[str]:
    """100 policy documents: 80 ALLOW (4 per service), 15 DENY, 5 AUDIT."""
    docs: list[str] = []
    for svc in range(SERVICES):
        target = {"targets": [_workload(svc)]} if targeted else {}
        service = f"/bench.v1.Svc{svc}"
        for k in range(4):
            callers = [_workload(rng.randrange(SERVICES)) for _ in range(3)]
            rule: dict[str, Any] = {
                "from": [{"source": {"principals": callers}}],
                "to": [{"operation": {"grpcMethods": [f"{service}/{METHODS[k]}"]}}],
            }
            if k == 1:
                rule["from"] = [{"source": {"principals": [f"spiffe://{TD}/ns/ns{svc % 10}/*"]}}]
                rule["to"] = [{"operation": {"grpcMethods": [f"{service}/*"]}}]
            if k == 2:
                rule["when"] = [{"key": "request.auth.claims[groups]", "values": ["admins"]}]
            if k == 3:
                rule["when"] = [{"key": "source.ip", "values": ["10.0.0.0/8", "192.168.0.0/16"]}]
            docs.append(
                _document(f"allow-svc{svc}-{k}", {"action": "ALLOW", **target, "rules": [rule]})
            )
    for d in range(15):
        banned = [f"spiffe://{TD}/ns/banned{d}/sa/x{j}" for j in range(5)]
        docs.append(
            _document(
                f"deny-{d}",
                {
                    "action": "DENY",
                    "rules": [
                        {"from": [{"source": {"principals": banned}}]},
                        {
                            "from": [{"source": {"notIpBlocks": ["0.0.0.0/0", "::/0"]}}],
                            "to": [{"operation": {"grpcMethods": [f"/bench.v1.Admin{d}/*"]}}],
                        },
                    ],
                },
            )
        )
    for a in range(5):
        docs.append(
            _document(
                f"audit-{a}",
                {
                    "action": "AUDIT",
                    "rules": [
                        {"to": [{"operation": {"grpcMethods": [f"/bench.v1.Svc{a}/Delete"]}}]}
                    ],
                },
            )
        )
    return docs


def generate_requests(rng: random.Random, count: int) -> list[dict[str, Any]]:
    out = []
    for _ in range(count):
        svc = rng.randrange(SERVICES)
        out.append(
            {
                "principal": _workload(rng.randrange(SERVICES)),
                "grpc_method": f"/bench.v1.Svc{svc}/{rng.choice(METHODS)}",
                "destination": _workload(svc),
                "source_ip": rng.choice(["10.1.2.3", "172.16.0.1", "192.168.1.1"]),
                "claims": {"groups": rng.choice([["admins"], ["dev"], []])},
            }
        )
    return out


def _percentiles(samples_ns: list[int]) -> tuple[float, float, float, float]:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000.0

    return at(0.50), at(0.99), ordered[-1] / 1000.0, statistics.fmean(ordered) / 1000.0


def _time_each(calls: Sequence[Callable[[], Any]]) -> list[int]:
    samples: list[int] = []
    clock = time.perf_counter_ns
    for call in calls:
        began = clock()
        call()
        samples.append(clock() - began)
    return samples


def run_layout(targeted: bool, decisions: int, seed: int) -> list[tuple[str, list[int], float]]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        for index, text in enumerate(generate_policies(rng, targeted=targeted)):
            Path(tmp, f"{index:03d}.yaml").write_text(text)
        policies = load_policy_dir(tmp)
    assert len(policies.authorization) == 100
    engine = AuthzEngine(policies.authorization)
    enforcer = Enforcer(policies, clock=SystemClock())
    raw = generate_requests(rng, decisions)
    contexts = [RequestContext.create(**r) for r in raw]
    accesses = [
        AccessRequest(
            peer_principal=r["principal"],
            grpc_method=r["grpc_method"],
            destination=r["destination"],
            source_ip=r["source_ip"],
        )
        for r in raw
    ]
    for ctx in contexts[: min(2000, len(contexts))]:  # warm the candidate caches
        engine.decide(ctx)
    allowed = sum(engine.decide(ctx).allowed for ctx in contexts) / len(contexts)
    engine_ns = _time_each([functools.partial(engine.decide, ctx) for ctx in contexts])
    enforcer_ns = _time_each([functools.partial(enforcer.check, a) for a in accesses])
    return [("engine", engine_ns, allowed), ("enforcer", enforcer_ns, allowed)]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench_authz", description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(list(argv))
    logging.getLogger("citadel.authz").setLevel(logging.WARNING)
    print(
        f"{args.decisions} decisions per row, 100 policies loaded, "
        f"target p99 <= {TARGET_P99_US:.0f} us"
    )
    header = ("p50 us", "p99 us", "max us", "mean us", "allowed")
    print(f"{'layout':<11} {'path':<9} " + " ".join(f"{h:>8}" for h in header))
    worst_engine_p99 = 0.0
    for targeted in (True, False):
        layout = "targeted" if targeted else "untargeted"
        for path, samples, allowed in run_layout(targeted, args.decisions, args.seed):
            p50, p99, worst, mean = _percentiles(samples)
            if path == "engine":
                worst_engine_p99 = max(worst_engine_p99, p99)
            print(
                f"{layout:<11} {path:<9} {p50:>8.1f} {p99:>8.1f} {worst:>8.1f} {mean:>8.1f} "
                f"{allowed:>8.1%}"
            )
    verdict = "meets" if worst_engine_p99 <= TARGET_P99_US else "is ABOVE"
    print(f"engine p99 {worst_engine_p99:.1f} us {verdict} the {TARGET_P99_US:.0f} us target")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
