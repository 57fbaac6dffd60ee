"""The Envoy bootstraps in deploy/envoy are valid and carry the settings SDS needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.peers.envoy import EXAMPLES, validate_bootstrap

pytestmark = pytest.mark.integration

BOOTSTRAPS = sorted(p.name for p in EXAMPLES.glob("*-sidecar.yaml"))


def _walk(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found.extend(_walk(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_walk(value))
    return found


def test_both_sidecar_examples_exist() -> None:
    assert BOOTSTRAPS == ["client-sidecar.yaml", "server-sidecar.yaml"]


@pytest.mark.parametrize("name", BOOTSTRAPS, ids=BOOTSTRAPS)
def test_example_passes_envoy_validate_mode(name: str) -> None:
    result = validate_bootstrap(EXAMPLES / name)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert "OK" in result.stdout + result.stderr


@pytest.mark.parametrize("name", BOOTSTRAPS, ids=BOOTSTRAPS)
def test_example_carries_what_sds_over_a_unix_socket_needs(name: str) -> None:
    document = yaml.safe_load((EXAMPLES / name).read_text())
    assert document["node"]["id"] and document["node"]["cluster"]
    [sds] = [
        c for c in document["static_resources"]["clusters"] if c["name"] == "citadel_agent_sds"
    ]
    options = sds["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in options["explicit_http_config"]
    pipe = sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]
    assert len(pipe["path"].encode()) <= 107
    items = _walk(document)
    grpc_services = [i["envoy_grpc"] for i in items if "envoy_grpc" in i]
    assert grpc_services, "no SDS config"
    for service in grpc_services:
        assert service["cluster_name"] == "citadel_agent_sds"
        assert service["retry_policy"]["retry_back_off"] == {
            "base_interval": "0.1s",
            "max_interval": "1s",
        }
    names = {i["name"] for i in items if "sds_config" in i}
    assert names == {"default", "ROOTCA"}
    sans = [
        i["match_typed_subject_alt_names"] for i in items if "match_typed_subject_alt_names" in i
    ]
    assert sans and all(s[0]["san_type"] == "URI" for s in sans)
    assert all(s[0]["matcher"]["exact"].startswith("spiffe://") for s in sans)


def test_a_bootstrap_without_node_is_caught_by_validate_mode(tmp_path: Path) -> None:
    document = yaml.safe_load((EXAMPLES / "server-sidecar.yaml").read_text())
    del document["node"]
    broken = tmp_path / "no-node.yaml"
    broken.write_text(yaml.safe_dump(document))
    result = validate_bootstrap(broken)
    assert result.returncode != 0
    assert "node 'id' and 'cluster' are required" in result.stdout + result.stderr
