"""Random certificate serial numbers, read from the OS CSPRNG in blocks.

Each serial is 128 random bits from ``os.urandom`` (never zero), as
:func:`citadel.identity.x509_templates.random_serial` makes them, but one ``urandom`` call
serves many certificates. That matters on the signing hot path: ``urandom`` releases the GIL,
and with many signing threads every release is a thread switch.

The buffer is process-wide and cleared in a forked child, so a child never reuses serials
its parent holds.
"""

from __future__ import annotations

import os

__all__ = ["SERIAL_BYTES", "next_serial"]

SERIAL_BYTES = 16  # 128 bits
_PER_READ = 256

_ready: list[int] = []


def _refill() -> None:
    data = os.urandom(SERIAL_BYTES * _PER_READ)
    fresh = [
        int.from_bytes(data[i : i + SERIAL_BYTES], "big") for i in range(0, len(data), SERIAL_BYTES)
    ]
    _ready.extend(serial for serial in fresh if serial)


def next_serial() -> int:
    """A positive random serial of at most 128 bits (``list.pop`` is atomic, so each
    buffered value goes to exactly one caller, also across threads)."""
    while True:
        try:
            return _ready.pop()
        except IndexError:
            _refill()


os.register_at_fork(after_in_child=_ready.clear)
