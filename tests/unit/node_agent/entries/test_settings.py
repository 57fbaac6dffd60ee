"""The ``entries:`` and ``workload_api:`` configuration sections."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from node_agent.config_document import Section, check_keys
from node_agent.entries.settings import SCHEMA, parse_entry_settings, parse_workload_api
from node_agent.errors import ConfigError
from node_agent.rotation import RotationPolicy


def test_defaults_sync_every_five_seconds_and_serve_no_workload_api() -> None:
    settings = parse_entry_settings(Section(None, "entries."))
    assert settings.sync_interval == timedelta(seconds=5)
    assert settings.svid.max_batch == 128
    assert parse_workload_api(Section(None, "workload_api.")) is None


def test_sections_are_read_and_svids_rotate_with_the_agents_policy() -> None:
    rotation = RotationPolicy(ratio=0.6)
    settings = parse_entry_settings(
        Section({"sync_interval_seconds": 2, "max_batch": 16}, "entries."), rotation=rotation
    )
    assert (settings.sync_interval, settings.svid.max_batch) == (timedelta(seconds=2), 16)
    assert settings.svid.rotation is rotation
    api = parse_workload_api(
        Section({"socket": "/run/agent/api.sock", "socket_group": 2000}, "workload_api.")
    )
    assert api is not None
    assert (api.socket_path, api.socket_group) == (Path("/run/agent/api.sock"), 2000)


@pytest.mark.parametrize(
    ("section", "doc", "message"),
    [
        ("entries", {"sync_interval_seconds": 0}, "positive"),
        ("entries", {"max_batch": 1000}, "between 1 and 256"),
        ("workload_api", {"socket": "relative/api.sock"}, "absolute"),
        ("workload_api", {"socket": "/" + "x" * 200}, "longer than"),
        ("workload_api", {"socket": "/run/a.sock", "socket_group": "wheel"}, "integer"),
    ],
    ids=["zero-interval", "huge-batch", "relative-socket", "long-socket", "group-name"],
)
def test_bad_values_name_the_key(section: str, doc: dict[str, Any], message: str) -> None:
    parse = parse_entry_settings if section == "entries" else parse_workload_api
    with pytest.raises(ConfigError, match=message):
        parse(Section(doc, f"{section}."))


def test_unknown_keys_are_reported_by_the_schema() -> None:
    with pytest.raises(ConfigError, match="did you mean 'sync_interval_seconds'"):
        check_keys({"entries": {"sync_interval_second": 3}}, SCHEMA)
