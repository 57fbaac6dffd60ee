"""Rendering CLI results as aligned text tables or JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import click

__all__ = ["echo_json", "echo_pairs", "echo_table", "format_remaining", "format_time"]


def format_time(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def format_remaining(not_after: datetime, now: datetime) -> str:
    """``expired``, or the time left as ``3d 4h`` / ``5h 12m`` / ``40s``."""
    left = not_after - now
    if left <= timedelta(0):
        return "expired"
    seconds = int(left.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot render {type(value).__name__} as JSON")


def echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=_json_default))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """An aligned table; an empty one prints only the header."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def echo_pairs(pairs: Sequence[tuple[str, Any]]) -> None:
    """``key: value`` lines with the values aligned."""
    width = max((len(k) for k, _ in pairs), default=0)
    for key, value in pairs:
        click.echo(f"{key + ':':<{width + 1}} {value}")
