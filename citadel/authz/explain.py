"""Explain an access result: the decision, who asked, and the rule that decided (CLI output)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from citadel.authz.decision import Decision
from citadel.authz.enforcer import AccessResult
from citadel.authz.policy import Operation, PolicySet, Rule, Source

__all__ = ["access_report", "report_rows", "rule_to_dict"]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _entry_dict(entry: Source | Operation) -> dict[str, Any]:
    return {
        _camel(f.name): list(getattr(entry, f.name))
        for f in dataclasses.fields(entry)
        if getattr(entry, f.name)
    }


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """A rule in its YAML shape (for explanations)."""
    out: dict[str, Any] = {}
    if rule.sources:
        out["from"] = [{"source": _entry_dict(s)} for s in rule.sources]
    if rule.operations:
        out["to"] = [{"operation": _entry_dict(o)} for o in rule.operations]
    if rule.conditions:
        out["when"] = [
            {
                k: v
                for k, v in (
                    ("key", c.key),
                    ("values", list(c.values)),
                    ("notValues", list(c.not_values)),
                )
                if v
            }
            for c in rule.conditions
        ]
    return out


def _deciding_rule(policies: PolicySet, decision: Decision) -> Rule | None:
    if decision.policy is None or decision.rule is None:
        return None
    for policy in policies.authorization:
        if policy.name == decision.policy and decision.rule < len(policy.rules):
            return policy.rules[decision.rule]
    return None


def access_report(result: AccessResult, policies: PolicySet) -> dict[str, Any]:
    """Everything the CLI prints about one check, JSON-ready (never the token itself)."""
    rule = _deciding_rule(policies, result.decision)
    report = result.decision.to_dict()
    report.update(
        {
            "principal": result.principal,
            "request_principal": result.token.request_principal if result.token else None,
            "rule_text": rule_to_dict(rule) if rule is not None else None,
            "response_headers": dict(result.response_headers),
        }
    )
    return report


def report_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    """The report as (label, value) rows for a table."""
    rows = [
        ("decision", "ALLOW" if report["allowed"] else "DENY"),
        ("reason", report["reason"]),
        ("policy", report["policy"] or "-"),
        ("rule", "-" if report["rule"] is None else str(report["rule"])),
        ("origin", report["origin"] or "-"),
        ("principal", report["principal"] or "(anonymous)"),
        ("request principal", report["request_principal"] or "-"),
        ("audit", ", ".join(report["audit"]) or "-"),
        ("explanation", report["explanation"]),
    ]
    if report["rule_text"]:
        rows.append(("matched rule", json.dumps(report["rule_text"])))
    return rows
