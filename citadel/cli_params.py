"""Click parameter types for the operator CLI: durations, SPIFFE IDs, trust domains, serials."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING

import click

from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.spiffe_id import SpiffeId, TrustDomain

__all__ = [
    "DURATION",
    "POSITIVE_DURATION",
    "SERIAL",
    "SPIFFE_ID",
    "TRUST_DOMAIN",
    "DurationType",
    "normalise_serial",
    "parse_duration",
]

if TYPE_CHECKING:  # click >= 8.2 makes ParamType generic; older releases do not
    _DurationBase = click.ParamType[timedelta, object]
    _SpiffeIdBase = click.ParamType[SpiffeId, object]
    _TrustDomainBase = click.ParamType[TrustDomain, object]
    _SerialBase = click.ParamType[str, object]
else:
    _DurationBase = _SpiffeIdBase = _TrustDomainBase = _SerialBase = click.ParamType

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d{1,9})([smhd])")
_WHOLE = re.compile(r"(?:\d{1,9}[smhd])+")
MAX_DURATION = timedelta(days=36500)
MAX_SERIAL_HEX = 40  # RFC 5280: at most 20 octets


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``24h``, ``30d`` or combinations such as ``1h30m``.

    Raises:
        ValueError: not of that form, or longer than 100 years.
    """
    value = text.strip().lower()
    if not _WHOLE.fullmatch(value):
        raise ValueError(
            f"{text[:40]!r} is not a duration; use a number and a unit (s, m, h, d), e.g. 24h"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _PART.findall(value))
    if seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"{text[:40]!r} is longer than 100 years")
    return timedelta(seconds=seconds)


class DurationType(_DurationBase):
    name = "duration"

    def __init__(self, *, allow_zero: bool = True) -> None:
        self.allow_zero = allow_zero

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        try:
            duration = parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if not self.allow_zero and duration <= timedelta(0):
            self.fail("must be longer than zero", param, ctx)
        return duration


class SpiffeIdType(_SpiffeIdBase):
    name = "spiffe-id"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> SpiffeId:
        if isinstance(value, SpiffeId):
            return value
        try:
            return SpiffeId.parse(str(value))
        except InvalidSpiffeIdError as exc:
            self.fail(f"{str(value)[:80]!r} is not a SPIFFE ID: {exc.message}", param, ctx)


class TrustDomainType(_TrustDomainBase):
    name = "trust-domain"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> TrustDomain:
        if isinstance(value, TrustDomain):
            return value
        try:
            return TrustDomain.parse(str(value))
        except InvalidSpiffeIdError as exc:
            self.fail(f"{str(value)[:80]!r} is not a trust domain: {exc.message}", param, ctx)


def normalise_serial(text: str) -> str:
    """Lowercase hex without separators or leading zeros (how serials are stored).

    Raises:
        ValueError: not a hexadecimal serial of at most 20 octets.
    """
    value = text.strip().lower().replace(":", "").removeprefix("0x")
    if not value or len(value) > MAX_SERIAL_HEX or not re.fullmatch(r"[0-9a-f]+", value):
        raise ValueError(f"{text[:48]!r} is not a hexadecimal certificate serial")
    return value.lstrip("0") or "0"


class SerialType(_SerialBase):
    name = "serial"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        try:
            return normalise_serial(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = DurationType()
POSITIVE_DURATION = DurationType(allow_zero=False)
SPIFFE_ID = SpiffeIdType()
TRUST_DOMAIN = TrustDomainType()
SERIAL = SerialType()
