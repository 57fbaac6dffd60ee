"""The ready file: JSON written atomically once the server is serving, removed on exit.

``{"port": 15012, "mtls_port": 15013, "metrics_port": 15014, "pid": 4242, "workers": 2}``
(``mtls_port`` and ``metrics_port`` are null when disabled).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["remove_ready_file", "write_ready_file"]


def write_ready_file(
    path: Path,
    *,
    port: int,
    mtls_port: int | None,
    metrics_port: int | None,
    pid: int,
    workers: int,
) -> None:
    document = {
        "port": port,
        "mtls_port": mtls_port,
        "metrics_port": metrics_port,
        "pid": pid,
        "workers": workers,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ready-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_ready_file(path: Path, *, pid: int) -> None:
    """Remove the file if it still describes process ``pid``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(document, dict) and document.get("pid") == pid:
        path.unlink(missing_ok=True)
