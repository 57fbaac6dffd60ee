"""The authorization engine: pure, precompiled and indexed.

Evaluation for one request:
    1. the applicable policies are the untargeted ones plus those whose ``targets`` match the
       request's destination;
    2. AUDIT rules that match are recorded in the decision (they never change the verdict);
    3. a matching DENY rule denies;
    4. if any ALLOW policy applies, a matching ALLOW rule allows and anything else is denied;
    5. otherwise the configured default action decides (deny unless configured otherwise).

Rules that can only match some gRPC methods (exact names or ``/pkg.Service/*``) are indexed
by method; the per-(destination, method) candidate lists are memoized in a bounded cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from citadel.authz.decision import Decision, Reason
from citadel.authz.matchers import Predicate, StringMatcher, compile_rule
from citadel.authz.method_scope import MethodScope, grpc_method_scope
from citadel.authz.policy import Action, AuthorizationPolicy
from citadel.authz.request import RequestContext

__all__ = ["AuthzEngine", "EngineOptions"]

_CACHE_LIMIT = 4096


@dataclass(frozen=True, kw_only=True)
class EngineOptions:
    """``default_action`` applies when no ALLOW policy applies: DENY (default) or ALLOW."""

    default_action: Action = Action.DENY

    def __post_init__(self) -> None:
        if self.default_action not in (Action.ALLOW, Action.DENY):
            raise ValueError("default_action must be ALLOW or DENY")


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    order: int
    policy: str
    origin: str
    index: int
    predicate: Predicate
    scope: MethodScope | None


@dataclass(frozen=True, slots=True)
class _CompiledPolicy:
    order: int
    source: AuthorizationPolicy
    targets: StringMatcher | None
    rules: tuple[_CompiledRule, ...]


@dataclass(frozen=True, slots=True)
class _Candidates:
    audit: tuple[_CompiledRule, ...]
    deny: tuple[_CompiledRule, ...]
    allow: tuple[_CompiledRule, ...]
    has_allow: bool


@dataclass(frozen=True, slots=True)
class _Bucket:
    """The policies that apply to one destination, with their rules split by action."""

    audit: tuple[_CompiledRule, ...]
    deny: tuple[_CompiledRule, ...]
    allow: tuple[_CompiledRule, ...]
    has_allow: bool

    def candidates(self, grpc_method: str | None) -> _Candidates:
        def keep(rules: tuple[_CompiledRule, ...]) -> tuple[_CompiledRule, ...]:
            return tuple(r for r in rules if r.scope is None or r.scope.admits(grpc_method))

        return _Candidates(keep(self.audit), keep(self.deny), keep(self.allow), self.has_allow)


def _compile(order: int, policy: AuthorizationPolicy, first_rule: int) -> _CompiledPolicy:
    rules = tuple(
        _CompiledRule(
            order=first_rule + i,
            policy=policy.name,
            origin=policy.origin,
            index=i,
            predicate=compile_rule(rule),
            scope=grpc_method_scope(rule),
        )
        for i, rule in enumerate(policy.rules)
    )
    targets = StringMatcher.compile(policy.targets) if policy.targets else None
    return _CompiledPolicy(order, policy, targets, rules)


class AuthzEngine:
    """Decides requests against a fixed list of authorization policies.

    The engine is immutable after construction and safe to share between threads; reloads
    build a new engine and swap it in.
    """

    def __init__(
        self, policies: Sequence[AuthorizationPolicy], options: EngineOptions | None = None
    ) -> None:
        self._options = options or EngineOptions()
        compiled: list[_CompiledPolicy] = []
        next_rule = 0
        for order, policy in enumerate(policies):
            compiled.append(_compile(order, policy, next_rule))
            next_rule += len(policy.rules)
        self._policies = tuple(compiled)
        self._untargeted = tuple(p for p in compiled if p.targets is None)
        self._by_target: dict[str, list[_CompiledPolicy]] = {}
        self._patterned: list[_CompiledPolicy] = []
        for p in compiled:
            if p.targets is None:
                continue
            if p.targets.match_any or p.targets.prefixes or p.targets.suffixes:
                self._patterned.append(p)
            for exact in p.targets.exact:
                self._by_target.setdefault(exact, []).append(p)
        self._buckets: dict[str | None, _Bucket] = {}
        self._candidates: dict[tuple[str | None, str | None], _Candidates] = {}

    @property
    def options(self) -> EngineOptions:
        return self._options

    @property
    def policies(self) -> tuple[AuthorizationPolicy, ...]:
        return tuple(p.source for p in self._policies)

    def _bucket(self, destination: str | None) -> _Bucket:
        bucket = self._buckets.get(destination)
        if bucket is not None:
            return bucket
        applicable = list(self._untargeted)
        if destination is not None:
            seen = {id(p) for p in applicable}
            for p in (*self._by_target.get(destination, ()), *self._patterned):
                if id(p) in seen or p.targets is None or not p.targets.matches(destination):
                    continue
                seen.add(id(p))
                applicable.append(p)
        applicable.sort(key=lambda p: p.order)

        def rules_of(action: Action) -> tuple[_CompiledRule, ...]:
            return tuple(r for p in applicable if p.source.action is action for r in p.rules)

        bucket = _Bucket(
            audit=rules_of(Action.AUDIT),
            deny=rules_of(Action.DENY),
            allow=rules_of(Action.ALLOW),
            has_allow=any(p.source.action is Action.ALLOW for p in applicable),
        )
        if len(self._buckets) >= _CACHE_LIMIT:
            self._buckets.clear()
        self._buckets[destination] = bucket
        return bucket

    def _lookup(self, destination: str | None, grpc_method: str | None) -> _Candidates:
        key = (destination, grpc_method)
        found = self._candidates.get(key)
        if found is not None:
            return found
        found = self._bucket(destination).candidates(grpc_method)
        if len(self._candidates) >= _CACHE_LIMIT:
            self._candidates.clear()
        self._candidates[key] = found
        return found

    def decide(self, ctx: RequestContext) -> Decision:
        """Decide one request. Never raises for request content."""
        candidates = self._lookup(ctx.destination, ctx.grpc_method)
        audit: tuple[str, ...] = ()
        if candidates.audit:
            audit = tuple(dict.fromkeys(r.policy for r in candidates.audit if r.predicate(ctx)))
        for rule in candidates.deny:
            if rule.predicate(ctx):
                return Decision(
                    allowed=False,
                    reason=Reason.DENIED_BY_POLICY,
                    policy=rule.policy,
                    origin=rule.origin,
                    rule=rule.index,
                    audit=audit,
                )
        if candidates.has_allow:
            for rule in candidates.allow:
                if rule.predicate(ctx):
                    return Decision(
                        allowed=True,
                        reason=Reason.ALLOWED_BY_POLICY,
                        policy=rule.policy,
                        origin=rule.origin,
                        rule=rule.index,
                        audit=audit,
                    )
            return Decision(allowed=False, reason=Reason.NO_ALLOW_MATCH, audit=audit)
        if self._options.default_action is Action.ALLOW:
            return Decision(allowed=True, reason=Reason.DEFAULT_ALLOW, audit=audit)
        return Decision(allowed=False, reason=Reason.DEFAULT_DENY, audit=audit)
