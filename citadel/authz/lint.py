"""Static checks of a policy directory: invalid files and rules that can never decide.

Errors (the CLI exits non-zero):
    * a file that does not load (the message names the file and the field);
    * two policies of one kind with the same name;
    * a rule shadowed by an earlier rule of the same policy (it can never decide);
    * an ALLOW rule shadowed by a DENY rule that applies to all of its targets.
Warnings:
    * an ALLOW policy without rules (it denies every request to its targets);
    * an ALLOW rule that repeats what an earlier ALLOW policy already allows;
    * ``requestPrincipals`` or claim conditions with no RequestAuthentication in the directory.

"Shadowed" is decided conservatively: rule A covers rule B only when every field A
constrains is constrained at least as tightly by B (pattern by pattern, CIDR by CIDR) and
B repeats each of A's ``when`` conditions. So every reported shadow is real; some subtle
ones may go unreported.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path

from citadel.authz.claims import CLAIMS_PREFIX
from citadel.authz.errors import PolicyError
from citadel.authz.patterns import Pattern, parse_pattern
from citadel.authz.policy import (
    Action,
    AuthorizationPolicy,
    Operation,
    RequestAuthentication,
    Rule,
    Source,
)
from citadel.authz.policy_loader import load_policy_file, policy_files

__all__ = ["Finding", "lint_policy_dir", "rule_covers"]


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" or "warning"
    origin: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.origin}: {self.message}"


# ---- coverage ---------------------------------------------------------------------------


def _patterns(values: Sequence[str], *, lower: bool = False) -> list[Pattern]:
    return [parse_pattern(v.lower() if lower else v) for v in values]


def _values_cover(a: Sequence[str], b: Sequence[str], name: str) -> bool:
    """Every value matched by the patterns ``b`` is matched by one of ``a``."""
    if name in ("ip_blocks", "not_ip_blocks"):
        nets_a = [ipaddress.ip_network(x) for x in a]
        return all(
            any(
                nb.version == na.version and nb.subnet_of(na)  # type: ignore[arg-type]
                for na in nets_a
            )
            for nb in (ipaddress.ip_network(x) for x in b)
        )
    lower = name in ("hosts", "not_hosts")
    pa, pb = _patterns(a, lower=lower), _patterns(b, lower=lower)
    return all(any(p.covers(q) for p in pa) for q in pb)


def _entry_covers(a: Source | Operation, b: Source | Operation) -> bool:
    """A source/operation entry ``a`` matches everything entry ``b`` matches."""
    for f in fields(a):
        values_a = getattr(a, f.name)
        if not values_a:
            continue
        values_b = getattr(b, f.name)
        if not values_b:
            return False
        if f.name.startswith("not_"):
            # a excludes values_a; b must exclude at least those.
            if not _values_cover(values_b, values_a, f.name):
                return False
        elif not _values_cover(values_a, values_b, f.name):
            return False
    return True


def _entries_cover(
    a: Sequence[Source] | Sequence[Operation], b: Sequence[Source] | Sequence[Operation]
) -> bool:
    if not a:
        return True
    if not b:
        return False
    return all(any(_entry_covers(ea, eb) for ea in a) for eb in b)


def rule_covers(a: Rule, b: Rule) -> bool:
    """True when every request rule ``b`` matches is also matched by rule ``a``."""
    return (
        _entries_cover(a.sources, b.sources)
        and _entries_cover(a.operations, b.operations)
        and all(cond in b.conditions for cond in a.conditions)
    )


def _targets_cover(a: AuthorizationPolicy, b: AuthorizationPolicy) -> bool:
    if not a.targets:
        return True
    if not b.targets:
        return False
    return _values_cover(a.targets, b.targets, "targets")


# ---- checks -----------------------------------------------------------------------------


def _where(policy: AuthorizationPolicy, index: int | None = None) -> str:
    rule = f" rule {index}" if index is not None else ""
    return f"policy {policy.name!r}{rule}"


def _uses_tokens(rule: Rule) -> bool:
    return any(s.request_principals for s in rule.sources) or any(
        c.key.startswith(CLAIMS_PREFIX) or c.key.startswith("request.auth.")
        for c in rule.conditions
    )


def _check_policies(
    policies: Sequence[AuthorizationPolicy], authn: Sequence[RequestAuthentication]
) -> list[Finding]:
    findings: list[Finding] = []
    for policy in policies:
        if policy.action is Action.ALLOW and not policy.rules:
            findings.append(
                Finding(
                    "warning",
                    policy.origin,
                    f"{_where(policy)} has no rules: it denies every request to its targets",
                )
            )
        for j, rule in enumerate(policy.rules):
            for i in range(j):
                if rule_covers(policy.rules[i], rule):
                    findings.append(
                        Finding(
                            "error",
                            policy.origin,
                            f"{_where(policy, j)} is shadowed by rule {i} of the same policy",
                        )
                    )
                    break
            if not authn and _uses_tokens(rule):
                findings.append(
                    Finding(
                        "warning",
                        policy.origin,
                        f"{_where(policy, j)} matches on JWTs but no RequestAuthentication "
                        "verifies any token, so it never matches",
                    )
                )
    denies = [p for p in policies if p.action is Action.DENY]
    for k, policy in enumerate(policies):
        if policy.action is not Action.ALLOW:
            continue
        for j, rule in enumerate(policy.rules):
            shadow = next(
                (
                    (deny, i)
                    for deny in denies
                    if _targets_cover(deny, policy)
                    for i, d in enumerate(deny.rules)
                    if rule_covers(d, rule)
                ),
                None,
            )
            if shadow is not None:
                deny, i = shadow
                findings.append(
                    Finding(
                        "error",
                        policy.origin,
                        f"{_where(policy, j)} never allows anything: every request it matches "
                        f"is denied by DENY {_where(deny, i)} ({deny.origin})",
                    )
                )
                continue
            earlier = next(
                (
                    (other, i)
                    for other in policies[:k]
                    if other.action is Action.ALLOW and _targets_cover(other, policy)
                    for i, o in enumerate(other.rules)
                    if rule_covers(o, rule)
                ),
                None,
            )
            if earlier is not None:
                other, i = earlier
                findings.append(
                    Finding(
                        "warning",
                        policy.origin,
                        f"{_where(policy, j)} is redundant: ALLOW {_where(other, i)} "
                        f"({other.origin}) already allows every request it matches",
                    )
                )
    return findings


def lint_policy_dir(directory: str | Path) -> list[Finding]:
    """Lint every file of a policy directory; returns errors and warnings (may be empty).

    Raises:
        PolicyError: the directory itself cannot be listed.
    """
    policies: list[AuthorizationPolicy] = []
    authn: list[RequestAuthentication] = []
    findings: list[Finding] = []
    names: dict[tuple[str, str], str] = {}
    for path in policy_files(directory):
        try:
            documents = load_policy_file(path)
        except PolicyError as exc:
            findings.append(
                Finding("error", exc.source, exc.message.removeprefix(f"{exc.source}: "))
            )
            continue
        for doc in documents:
            key = (type(doc).__name__, doc.name)
            if key in names:
                findings.append(
                    Finding(
                        "error",
                        doc.origin,
                        f"{key[0]} {doc.name!r} is already defined in {names[key]}",
                    )
                )
                continue
            names[key] = doc.origin
            if isinstance(doc, AuthorizationPolicy):
                policies.append(doc)
            else:
                authn.append(doc)
    findings.extend(_check_policies(policies, authn))
    return findings
