"""Strict YAML reading with precise errors: the file and the dotted field path.

:class:`StrictLoader` is PyYAML's safe loader without aliases (no expansion bombs) and
without duplicate keys (a repeated key must not silently override a rule). :class:`Node`
wraps a value with its origin and path so every check can fail with
``<file>: <field>: <problem>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any, NoReturn, cast

import yaml

from citadel.authz.errors import PolicyError

__all__ = [
    "MAX_YAML_FILE_BYTES",
    "Checker",
    "Node",
    "StrictLoader",
    "load_yaml_file",
    "yaml_documents",
]

MAX_YAML_FILE_BYTES = 1 << 20

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

Checker = Callable[[str], "str | None"]


class StrictLoader(yaml.SafeLoader):
    """SafeLoader without aliases and without duplicate mapping keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = cast(Any, self).peek_event().start_mark
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases are not allowed in policies", mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                continue  # other keys: the base class refuses unhashable ones (typed error)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_documents(text: str, origin: str) -> list[Any]:
    """All documents of a YAML text.

    Raises:
        PolicyError: the text is not valid YAML (with line and column), uses aliases or
            repeats a key.
    """
    try:
        return list(yaml.load_all(text, Loader=StrictLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise PolicyError(origin, "", f"not valid YAML{where}: {problem}") from exc
    except RecursionError as exc:
        raise PolicyError(origin, "", "YAML is nested too deeply") from exc


class Node:
    """A YAML value with its origin and dotted field path, for precise errors."""

    __slots__ = ("origin", "path", "value")

    def __init__(self, value: Any, origin: str, path: str) -> None:
        self.value = value
        self.origin = origin
        self.path = path

    def fail(self, problem: str) -> NoReturn:
        raise PolicyError(self.origin, self.path, problem)

    def _sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def mapping(self, allowed: Iterable[str]) -> dict[str, Node]:
        if not isinstance(self.value, dict):
            self.fail("must be a mapping")
        allowed = tuple(allowed)
        out: dict[str, Node] = {}
        for key, value in self.value.items():
            if not isinstance(key, str):
                self.fail(f"keys must be strings, found {key!r}")
            if key not in allowed:
                raise PolicyError(
                    self.origin,
                    self._sub(key),
                    f"unknown field (allowed: {', '.join(allowed)})",
                )
            out[key] = Node(value, self.origin, self._sub(key))
        return out

    def mapping_any(self) -> dict[str, Node]:
        """A mapping whose keys are data (not field names); keys must be strings."""
        if not isinstance(self.value, dict):
            self.fail("must be a mapping")
        out: dict[str, Node] = {}
        for key, value in self.value.items():
            if not isinstance(key, str):
                self.fail(f"keys must be strings, found {key!r}")
            out[key] = Node(value, self.origin, self._sub(key))
        return out

    def items(self) -> list[Node]:
        if not isinstance(self.value, list):
            self.fail("must be a list")
        return [Node(v, self.origin, f"{self.path}[{i}]") for i, v in enumerate(self.value)]

    def string(self) -> str:
        if not isinstance(self.value, str):
            self.fail(f"must be a string, found {type(self.value).__name__}")
        if not self.value:
            self.fail("must not be empty")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail("must be true or false")
        return self.value

    def integer(self, low: int, high: int) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            self.fail("must be an integer")
        if not low <= self.value <= high:
            self.fail(f"must be between {low} and {high}")
        return self.value

    def duration(self, low: timedelta, high: timedelta) -> timedelta:
        value = self.value
        if isinstance(value, int) and not isinstance(value, bool):
            result = timedelta(seconds=value)
        elif isinstance(value, str) and value and (m := _DURATION.match(value)):
            h, m_, s = (int(x) if x else 0 for x in m.groups())
            result = timedelta(hours=h, minutes=m_, seconds=s)
        else:
            self.fail("must be a duration such as 30s, 5m, 1h30m or a number of seconds")
        if not low <= result <= high:
            self.fail(f"must be between {low} and {high}")
        return result

    def patterns(self, check: Checker, *, allow_int: bool = False) -> tuple[str, ...]:
        out: list[str] = []
        for item in self.items():
            value = item.value
            if allow_int and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                item.fail(f"must be a string, found {type(value).__name__}")
            problem = check(value)
            if problem:
                item.fail(f"{value!r}: {problem}")
            out.append(value)
        if not out:
            self.fail("must not be an empty list (omit the field instead)")
        return tuple(out)


def load_yaml_file(path: str | Path) -> list[Any]:
    """Read a UTF-8 YAML file (at most :data:`MAX_YAML_FILE_BYTES`) into its documents.

    Raises:
        PolicyError: unreadable, too large, not UTF-8, or not valid strict YAML.
    """
    origin = str(path)
    try:
        with Path(path).open("rb") as handle:
            data = handle.read(MAX_YAML_FILE_BYTES + 1)
    except OSError as exc:
        raise PolicyError(origin, "", f"cannot read file: {exc.strerror or exc}") from exc
    if len(data) > MAX_YAML_FILE_BYTES:
        raise PolicyError(origin, "", f"file is larger than {MAX_YAML_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(origin, "", "file is not UTF-8 text") from exc
    return yaml_documents(text, origin)
