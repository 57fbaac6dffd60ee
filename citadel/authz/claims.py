"""JWT claims as policy conditions see them: ``request.auth.claims[a][b]`` paths and values."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["CLAIMS_PREFIX", "bracket_names", "claim_path", "claim_values"]

CLAIMS_PREFIX = "request.auth.claims"


def claim_path(key: str) -> tuple[str, ...]:
    """``request.auth.claims[a][b]`` -> ``("a", "b")``. Raises ValueError on bad syntax."""
    rest = key[len(CLAIMS_PREFIX) :]
    return bracket_names(rest)


def bracket_names(rest: str) -> tuple[str, ...]:
    """``[a][b]`` -> ``("a", "b")``. Raises ValueError on bad syntax."""
    names: list[str] = []
    while rest:
        if not rest.startswith("["):
            raise ValueError("expected '[name]'")
        end = rest.find("]")
        if end <= 1:
            raise ValueError("expected a non-empty '[name]'")
        name = rest[1:end]
        if "[" in name:
            raise ValueError("unbalanced '['")
        names.append(name)
        rest = rest[end + 1 :]
    if not names:
        raise ValueError("expected '[name]'")
    return tuple(names)


def _scalar_text(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return None


def claim_values(claims: Mapping[str, Any], path: Sequence[str]) -> tuple[str, ...]:
    """The string forms of a (nested) claim: a list claim gives each scalar element."""
    value: object = claims
    for name in path:
        if not isinstance(value, Mapping) or name not in value:
            return ()
        value = value[name]
    if isinstance(value, list):
        texts = (_scalar_text(v) for v in value)
        return tuple(t for t in texts if t is not None)
    text = _scalar_text(value)
    return () if text is None else (text,)
