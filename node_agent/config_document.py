"""Reading a configuration document: unknown-key checks, env overrides, typed access.

Generic over a *schema*: nested dicts whose leaves name a type (``"str"``, ``"path"``,
``"paths"``, ``"float"``, ``"int"``, ``"bool"``, ``"seconds"``). Every leaf has an
environment override named ``PREFIX`` + its upper-cased key path joined by ``_``.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from node_agent.errors import ConfigError

__all__ = ["Section", "apply_env", "check_keys", "env_names"]


def _suggest(key: str, known: Mapping[str, Any]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_keys(doc: Mapping[str, Any], schema: Mapping[str, Any], where: str = "") -> None:
    """Raise :class:`ConfigError` for a key the schema does not know (with a suggestion)."""
    for key, value in doc.items():
        path = f"{where}{key}"
        if not isinstance(key, str) or key not in schema:
            raise ConfigError(f"unknown key '{path}'{_suggest(str(key), schema)}")
        if isinstance(schema[key], dict):
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"'{path}' must be a mapping")
            check_keys(value, schema[key], f"{path}.")


def env_names(
    schema: Mapping[str, Any], env_prefix: str, prefix: tuple[str, ...] = ()
) -> dict[str, tuple[str, ...]]:
    """Environment variable name -> key path, for every leaf of ``schema``."""
    leaves: dict[str, tuple[str, ...]] = {}
    for key, value in schema.items():
        path = (*prefix, key)
        if isinstance(value, dict):
            leaves.update(env_names(value, env_prefix, path))
        else:
            leaves[env_prefix + "_".join(p.upper() for p in path)] = path
    return leaves


def apply_env(
    doc: dict[str, Any],
    env: Mapping[str, str],
    schema: Mapping[str, Any],
    env_prefix: str,
    *,
    ignore: frozenset[str] = frozenset(),
) -> None:
    """Write ``env_prefix*`` overrides from ``env`` into ``doc`` (unknown names are errors)."""
    leaves = env_names(schema, env_prefix)
    for name, raw in sorted(env.items()):
        if not name.startswith(env_prefix) or name in ignore:
            continue
        path = leaves.get(name)
        if path is None:
            raise ConfigError(
                f"unknown environment override {name}{_suggest(name, dict.fromkeys(leaves))}"
            )
        try:
            value: Any = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        leaf_type = _leaf_type(schema, path)
        if leaf_type in ("str", "path") and value is not None:
            value = raw  # never reinterpret a string (e.g. "on", "0123")
        if leaf_type == "paths" and isinstance(value, str):
            value = [p for p in value.split(",") if p]
        node = doc
        for key in path[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        node[path[-1]] = value


def _leaf_type(schema: Mapping[str, Any], path: tuple[str, ...]) -> str:
    node: Any = schema
    for key in path:
        node = node[key]
    return str(node)


class Section:
    """Typed access to one mapping of the document, with the key path for messages."""

    def __init__(self, doc: Mapping[str, Any] | None, where: str) -> None:
        self._doc = doc or {}
        self._where = where

    def _name(self, key: str) -> str:
        return f"{self._where}{key}"

    def has(self, key: str) -> bool:
        return self._doc.get(key) is not None

    def section(self, key: str) -> Section:
        return Section(self._doc.get(key), f"{self._where}{key}.")

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._doc.get(key)
        if value is None:
            if required:
                raise ConfigError(f"'{self._name(key)}' is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"'{self._name(key)}' must be a non-empty string")
        return value.strip()

    def path(self, key: str, *, required: bool = False) -> Path | None:
        value = self.text(key, required=required)
        return Path(value).expanduser() if value is not None else None

    def paths(self, key: str) -> tuple[Path, ...]:
        value = self._doc.get(key)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"'{self._name(key)}' must be a list of paths")
        return tuple(Path(v).expanduser() for v in value)

    def number(self, key: str, default: float) -> float:
        value = self._doc.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"'{self._name(key)}' must be a number")
        return float(value)

    def integer(self, key: str, default: int) -> int:
        value = self._doc.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"'{self._name(key)}' must be an integer")
        return value

    def seconds(self, key: str, default: timedelta | None) -> timedelta | None:
        value = self._doc.get(key)
        if value is None:
            return default
        seconds = self.number(key, 0.0)
        if seconds <= 0:
            raise ConfigError(f"'{self._name(key)}' must be a positive number of seconds")
        return timedelta(seconds=seconds)

    def boolean(self, key: str, default: bool) -> bool:
        value = self._doc.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"'{self._name(key)}' must be true or false")
        return value
