"""Checks applied to every value before it reaches the database.

They make SQLite and PostgreSQL behave the same on bad input: PostgreSQL cannot store a NUL
character in text, neither backend can encode a lone surrogate, and an over-long indexed key
would hit PostgreSQL's index size limit. Failures raise :class:`InvalidRecordError`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import UTC, datetime, timedelta
from typing import Final

from citadel.store.errors import InvalidRecordError

__all__ = [
    "MAX_ACTION_BYTES",
    "MAX_FINGERPRINT_BYTES",
    "MAX_NAME_BYTES",
    "MAX_SERIAL_BYTES",
    "MAX_SPIFFE_ID_BYTES",
    "MAX_TOKEN_HASH_BYTES",
    "check_aware",
    "check_choice",
    "check_metadata",
    "check_optional_aware",
    "check_positive",
    "check_text",
]

# Limits of the indexed or key columns (bytes of UTF-8). Free-text columns have no limit.
MAX_NAME_BYTES: Final = 255  # authority id, lock name and holder
MAX_SERIAL_BYTES: Final = 128
MAX_FINGERPRINT_BYTES: Final = 128
MAX_SPIFFE_ID_BYTES: Final = 2048  # the SPIFFE ID standard's own maximum
MAX_TOKEN_HASH_BYTES: Final = 128
MAX_ACTION_BYTES: Final = 128


def check_text(name: str, value: object, *, max_bytes: int | None = None) -> str:
    """Return ``value`` if it is a non-empty string the database can store intact.

    Raises:
        InvalidRecordError: not a string, empty, holds NUL or a lone surrogate, or is longer
            than ``max_bytes`` in UTF-8.
    """
    if not isinstance(value, str):
        raise InvalidRecordError(f"{name} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidRecordError(f"{name} must not be empty")
    if "\x00" in value:
        raise InvalidRecordError(f"{name} must not contain a NUL character")
    if value.isascii():  # one byte per character, and no surrogate can be present
        size = len(value)
    else:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidRecordError(f"{name} is not valid Unicode text") from exc
    if max_bytes is not None and size > max_bytes:
        raise InvalidRecordError(f"{name} is {size} bytes long; the maximum is {max_bytes}")
    return value


def check_aware(name: str, value: object) -> datetime:
    """Return ``value`` converted to UTC; it must be a timezone-aware datetime.

    Raises:
        InvalidRecordError: not a datetime, or naive.
    """
    if not isinstance(value, datetime):
        raise InvalidRecordError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidRecordError(f"{name} must be timezone-aware")
    return value.astimezone(UTC)


def check_optional_aware(name: str, value: object) -> datetime | None:
    return None if value is None else check_aware(name, value)


def check_choice(name: str, value: object, choices: Collection[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        allowed = ", ".join(sorted(choices))
        raise InvalidRecordError(f"{name} must be one of {allowed}; got {value!r:.80}")
    return value


def check_positive(name: str, value: object) -> timedelta:
    if not isinstance(value, timedelta):
        raise InvalidRecordError(f"{name} must be a timedelta, not {type(value).__name__}")
    if value <= timedelta(0):
        raise InvalidRecordError(f"{name} must be positive")
    return value


def check_metadata(name: str, value: object) -> dict[str, str]:
    """Return a plain ``dict`` copy of a string-to-string mapping.

    Metadata is stored as JSON with non-ASCII escaped, so any string (NUL included) round-trips.
    """
    if not isinstance(value, Mapping):
        raise InvalidRecordError(f"{name} must be a mapping, not {type(value).__name__}")
    copy: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise InvalidRecordError(f"{name} keys and values must be strings")
        copy[key] = item
    return copy
