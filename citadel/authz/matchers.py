"""Compile policy rules into fast predicates over a :class:`RequestContext`.

Everything here runs at load time except the returned closures, which do only set lookups,
``str.startswith``/``endswith`` with tuples and a few attribute reads per field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from citadel.authz.claims import CLAIMS_PREFIX, bracket_names, claim_path, claim_values
from citadel.authz.patterns import PatternKind, parse_pattern
from citadel.authz.policy import Condition, Operation, Rule, Source
from citadel.authz.request import RequestContext

__all__ = ["HEADERS_PREFIX", "Predicate", "StringMatcher", "compile_rule"]

Predicate = Callable[[RequestContext], bool]

HEADERS_PREFIX = "request.headers"


@dataclass(frozen=True, slots=True)
class StringMatcher:
    """Matches a string against exact values, prefixes and suffixes (or anything)."""

    exact: frozenset[str]
    prefixes: tuple[str, ...]
    suffixes: tuple[str, ...]
    match_any: bool

    @classmethod
    def compile(cls, patterns: Iterable[str], *, lower: bool = False) -> StringMatcher:
        exact: set[str] = set()
        prefixes: list[str] = []
        suffixes: list[str] = []
        match_any = False
        for raw in patterns:
            pattern = parse_pattern(raw.lower() if lower else raw)
            if pattern.kind is PatternKind.ANY:
                match_any = True
            elif pattern.kind is PatternKind.EXACT:
                exact.add(pattern.text)
            elif pattern.kind is PatternKind.PREFIX:
                prefixes.append(pattern.text)
            else:
                suffixes.append(pattern.text)
        return cls(frozenset(exact), tuple(prefixes), tuple(suffixes), match_any)

    def matches(self, value: str) -> bool:
        return (
            self.match_any
            or value in self.exact
            or (bool(self.prefixes) and value.startswith(self.prefixes))
            or (bool(self.suffixes) and value.endswith(self.suffixes))
        )

    def matches_any(self, values: Iterable[str]) -> bool:
        return any(self.matches(v) for v in values)


def _string_test(patterns: Sequence[str], *, lower: bool = False) -> Callable[[str], bool]:
    matcher = StringMatcher.compile(patterns, lower=lower)
    if not matcher.match_any and not matcher.prefixes and not matcher.suffixes:
        return matcher.exact.__contains__
    return matcher.matches


# ---- field accessors -------------------------------------------------------------------


def _scalar_field(
    values: Sequence[str],
    not_values: Sequence[str],
    get: Callable[[RequestContext], str | None],
    test_factory: Callable[[Sequence[str]], Callable[[str], bool]],
) -> list[Predicate]:
    checks: list[Predicate] = []
    if values:
        test = test_factory(values)

        def positive(ctx: RequestContext) -> bool:
            value = get(ctx)
            return value is not None and test(value)

        checks.append(positive)
    if not_values:
        not_test = test_factory(not_values)

        def negative(ctx: RequestContext) -> bool:
            value = get(ctx)
            return value is None or not not_test(value)

        checks.append(negative)
    return checks


def _ip_test(
    blocks: Sequence[str],
) -> Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], bool]:
    """Membership in any block, as integer range checks (``ip in network`` is slow)."""
    ranges = tuple(
        (net.version, int(net.network_address), int(net.broadcast_address))
        for net in (ipaddress.ip_network(b, strict=True) for b in blocks)
    )

    def test(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        version, value = address.version, int(address)
        for block_version, low, high in ranges:
            if block_version == version and low <= value <= high:
                return True
        return False

    return test


def _ip_field(values: Sequence[str], not_values: Sequence[str]) -> list[Predicate]:
    checks: list[Predicate] = []
    if values:
        test = _ip_test(values)
        checks.append(lambda ctx: ctx.source_ip is not None and test(ctx.source_ip))
    if not_values:
        not_test = _ip_test(not_values)
        checks.append(lambda ctx: ctx.source_ip is None or not not_test(ctx.source_ip))
    return checks


def _host_test(patterns: Sequence[str]) -> Callable[[str], bool]:
    matcher = StringMatcher.compile(patterns, lower=True)

    def test(host: str) -> bool:
        if matcher.matches(host):
            return True
        bare, sep, port = host.rpartition(":")
        return bool(sep) and port.isdigit() and not bare.endswith(":") and matcher.matches(bare)

    return test


def _port_test(ports: Sequence[str]) -> Callable[[str], bool]:
    return frozenset(ports).__contains__


# ---- conditions ----------------------------------------------------------------------


def _multi_field(
    values: Sequence[str],
    not_values: Sequence[str],
    get: Callable[[RequestContext], tuple[str, ...]],
    test_factory: Callable[[Sequence[str]], Callable[[str], bool]] = _string_test,
) -> list[Predicate]:
    checks: list[Predicate] = []
    if values:
        test = test_factory(values)
        checks.append(lambda ctx: any(test(v) for v in get(ctx)))
    if not_values:
        not_test = test_factory(not_values)
        checks.append(lambda ctx: not any(not_test(v) for v in get(ctx)))
    return checks


def _condition_checks(condition: Condition) -> list[Predicate]:
    key, values, not_values = condition.key, condition.values, condition.not_values
    if key.startswith(CLAIMS_PREFIX):
        path = claim_path(key)
        return _multi_field(values, not_values, lambda ctx: claim_values(ctx.claims, path))
    if key.startswith(HEADERS_PREFIX):
        (name,) = bracket_names(key[len(HEADERS_PREFIX) :])
        header = name.lower()
        return _multi_field(values, not_values, lambda ctx: ctx.headers.get(header, ()))
    if key == "request.auth.principal":
        return _scalar_field(values, not_values, lambda ctx: ctx.request_principal, _string_test)
    if key == "request.auth.audiences":
        return _multi_field(values, not_values, lambda ctx: ctx.audiences)
    if key == "source.ip":
        return _ip_field(values, not_values)
    if key == "source.principal":
        return _scalar_field(values, not_values, lambda ctx: ctx.principal, _string_test)
    if key == "source.namespace":
        return _scalar_field(values, not_values, lambda ctx: ctx.namespace, _string_test)
    if key == "destination.port":
        return _scalar_field(
            values,
            not_values,
            lambda ctx: None if ctx.port is None else str(ctx.port),
            _port_test,
        )
    raise ValueError(f"unsupported condition key {key!r}")


# ---- rules ---------------------------------------------------------------------------


def _source_checks(source: Source) -> list[Predicate]:
    """Cheapest first: string lookups, then address ranges."""
    return [
        *_scalar_field(
            source.principals, source.not_principals, lambda c: c.principal, _string_test
        ),
        *_scalar_field(
            source.namespaces, source.not_namespaces, lambda c: c.namespace, _string_test
        ),
        *_scalar_field(
            source.request_principals,
            source.not_request_principals,
            lambda c: c.request_principal,
            _string_test,
        ),
        *_ip_field(source.ip_blocks, source.not_ip_blocks),
    ]


def _operation_checks(op: Operation) -> list[Predicate]:
    return [
        *_scalar_field(op.grpc_methods, op.not_grpc_methods, lambda c: c.grpc_method, _string_test),
        *_scalar_field(op.methods, op.not_methods, lambda c: c.method, _string_test),
        *_scalar_field(op.paths, op.not_paths, lambda c: c.path, _string_test),
        *_scalar_field(op.hosts, op.not_hosts, lambda c: c.host, _host_test),
        *_scalar_field(
            op.ports, op.not_ports, lambda c: None if c.port is None else str(c.port), _port_test
        ),
    ]


def _all_of(checks: Sequence[Predicate]) -> Predicate:
    if not checks:
        return lambda ctx: True
    if len(checks) == 1:
        return checks[0]
    frozen = tuple(checks)

    def all_of(ctx: RequestContext) -> bool:
        for check in frozen:  # noqa: SIM110 - no generator per call on the hot path
            if not check(ctx):
                return False
        return True

    return all_of


def _any_of(alternatives: Sequence[Predicate]) -> Predicate:
    if len(alternatives) == 1:
        return alternatives[0]
    frozen = tuple(alternatives)

    def any_of(ctx: RequestContext) -> bool:
        for alternative in frozen:  # noqa: SIM110 - no generator per call on the hot path
            if alternative(ctx):
                return True
        return False

    return any_of


def compile_rule(rule: Rule) -> Predicate:
    """One predicate for the whole rule (``from`` AND ``to`` AND ``when``).

    The parts run cheapest and most selective first: operations (method/path lookups),
    then sources, then ``when`` conditions.

    Raises:
        ValueError: a pattern or condition key is invalid (the loader checks these first).
    """
    parts: list[Predicate] = []
    if rule.operations:
        parts.append(_any_of([_all_of(_operation_checks(o)) for o in rule.operations]))
    if rule.sources:
        parts.append(_any_of([_all_of(_source_checks(s)) for s in rule.sources]))
    for condition in rule.conditions:
        parts.extend(_condition_checks(condition))
    return _all_of(parts)
