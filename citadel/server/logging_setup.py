"""Log format for ``citadel serve`` (and its workers)."""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_server_logging"]


def configure_server_logging(level: int, *, worker: int | None = None) -> None:
    """Send Citadel's logs at ``level`` to stderr (third-party libraries stay at WARNING)."""
    root = logging.getLogger()
    tag = f"[worker {worker}] " if worker is not None else ""
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    for handler in root.handlers:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")
        )
    root.setLevel(min(level, logging.WARNING))
    logging.getLogger("citadel").setLevel(level)
