"""The ``entries:`` and ``workload_api:`` sections of the agent configuration.

:data:`SCHEMA` is the fragment to merge into the agent's configuration schema (it also gives
the ``CITADEL_AGENT_*`` overrides); :func:`parse_entry_settings` and
:func:`parse_workload_api` read the two sections::

    workload_api:
      socket: /run/citadel-agent/workload/api.sock   # absent: no Workload API
      socket_group: 2000                             # may connect (dir 0750, socket 0660)
    entries:
      sync_interval_seconds: 5
      max_batch: 128
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from node_agent.config_document import Section
from node_agent.entries.svid_manager import SvidPolicy
from node_agent.errors import ConfigError
from node_agent.rotation import BackoffPolicy, RotationPolicy
from node_agent.workload_api.server import WorkloadApiConfig

__all__ = ["SCHEMA", "EntrySettings", "parse_entry_settings", "parse_workload_api"]


@dataclass(frozen=True, kw_only=True, slots=True)
class EntrySettings:
    """``entries:`` in the agent configuration.

    Attributes:
        sync_interval: how often entries and the bundle are synced.
        svid: key type, rotation and retry of the per-entry SVIDs, and the batch size.
        backoff: retries of a failed sync.
    """

    sync_interval: timedelta = timedelta(seconds=5)
    svid: SvidPolicy = field(default_factory=SvidPolicy)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)


SCHEMA: dict[str, Any] = {
    "workload_api": {"socket": "path", "socket_group": "int", "max_connections": "int"},
    "entries": {"sync_interval_seconds": "seconds", "max_batch": "int"},
}


def parse_entry_settings(
    section: Section,
    *,
    rotation: RotationPolicy | None = None,
    backoff: BackoffPolicy | None = None,
) -> EntrySettings:
    """``entries:``; per-entry SVIDs rotate and retry like the agent's own certificate.

    Raises:
        ConfigError: a value out of range (the message names the key).
    """
    interval = section.seconds("sync_interval_seconds", timedelta(seconds=5))
    max_batch = section.integer("max_batch", 128)
    if not 1 <= max_batch <= 256:
        raise ConfigError("'entries.max_batch' must be between 1 and 256")
    backoff = backoff if backoff is not None else BackoffPolicy()
    return EntrySettings(
        sync_interval=interval or timedelta(seconds=5),
        svid=SvidPolicy(
            rotation=rotation if rotation is not None else RotationPolicy(),
            backoff=backoff,
            max_batch=max_batch,
        ),
        backoff=backoff,
    )


def parse_workload_api(section: Section) -> WorkloadApiConfig | None:
    """``workload_api:``, or None when no socket is configured.

    Raises:
        ConfigError: a relative or over-long socket path, a bad group or limit.
    """
    socket = section.path("socket")
    if socket is None:
        return None
    if not Path(socket).is_absolute():
        raise ConfigError("'workload_api.socket' must be an absolute path")
    group = section.integer("socket_group", -1)
    return WorkloadApiConfig(
        socket_path=socket,
        socket_group=None if group == -1 else group,
        max_connections=section.integer("max_connections", 1024),
    )
