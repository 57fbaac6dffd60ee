"""Checks on registration entries before they reach the database.

:class:`~citadel.identity.registration.RegistrationEntry` already enforces the entry rules;
these add what storage needs: a TTL of whole seconds (it is stored as an integer) and a
hint the database can hold intact.
"""

from __future__ import annotations

from datetime import timedelta

from citadel.identity.registration import RegistrationEntry
from citadel.store.errors import InvalidRecordError

__all__ = ["checked_entry", "checked_revision"]

MAX_TTL_SECONDS = 2**62


def checked_entry(entry: RegistrationEntry) -> RegistrationEntry:
    """Return ``entry`` if it can be stored as it is.

    Raises:
        TypeError: not a RegistrationEntry.
        InvalidRecordError: a fractional or huge TTL, or a hint with NUL or lone surrogates.
    """
    if not isinstance(entry, RegistrationEntry):
        raise TypeError(f"expected RegistrationEntry, not {type(entry).__name__}")
    if entry.ttl is not None:
        seconds = entry.ttl.total_seconds()
        if entry.ttl % timedelta(seconds=1) or not 1 <= seconds <= MAX_TTL_SECONDS:
            raise InvalidRecordError("entry TTL must be a whole number of seconds")
    if "\x00" in entry.hint:
        raise InvalidRecordError("entry hint must not contain a NUL character")
    try:
        entry.hint.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRecordError("entry hint is not valid Unicode text") from exc
    return entry


def checked_revision(value: object) -> int:
    """Return a revision to compare against (a non-negative int).

    Raises:
        TypeError: not an int.
        ValueError: negative.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("revision must be an int")
    if value < 0:
        raise ValueError("revision must not be negative")
    return value
