"""The ext_authz server sidecar example is valid Envoy config and fails closed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.authz_envoy.stack import SERVER_BOOTSTRAP, server_bootstrap
from tests.peers.envoy import EXAMPLES, validate_bootstrap

pytestmark = pytest.mark.integration

EXAMPLE = EXAMPLES / SERVER_BOOTSTRAP


def _document() -> dict[str, Any]:
    document = yaml.safe_load(EXAMPLE.read_text())
    assert isinstance(document, dict)
    return document


def _http_filters(document: dict[str, Any]) -> list[dict[str, Any]]:
    [listener] = document["static_resources"]["listeners"]
    [chain] = listener["filter_chains"]
    [manager] = chain["filters"]
    filters = manager["typed_config"]["http_filters"]
    assert isinstance(filters, list)
    return filters


def _cluster(document: dict[str, Any], name: str) -> dict[str, Any]:
    [cluster] = [c for c in document["static_resources"]["clusters"] if c["name"] == name]
    assert isinstance(cluster, dict)
    return cluster


def test_example_passes_envoy_validate_mode() -> None:
    result = validate_bootstrap(EXAMPLE)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
    assert "OK" in result.stdout + result.stderr


def test_example_asks_ext_authz_before_routing_and_fails_closed() -> None:
    filters = _http_filters(_document())
    assert [f["name"] for f in filters] == [
        "envoy.filters.http.ext_authz",
        "envoy.filters.http.router",
    ]
    config = filters[0]["typed_config"]
    assert config["transport_api_version"] == "V3"
    assert config["failure_mode_allow"] is False
    assert config["status_on_error"] == {"code": "Forbidden"}
    assert config["include_peer_certificate"] is True
    assert config["grpc_service"]["envoy_grpc"]["cluster_name"] == "citadel_ext_authz"


def test_example_reaches_ext_authz_over_http2_on_a_short_unix_socket() -> None:
    cluster = _cluster(_document(), "citadel_ext_authz")
    options = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
    ]
    assert "http2_protocol_options" in options["explicit_http_config"]
    [endpoints] = cluster["load_assignment"]["endpoints"]
    [lb] = endpoints["lb_endpoints"]
    path = lb["endpoint"]["address"]["pipe"]["path"]
    assert len(path.encode()) <= 107


def test_example_handshake_admits_only_its_own_trust_domain() -> None:
    [listener] = _document()["static_resources"]["listeners"]
    context = listener["filter_chains"][0]["transport_socket"]["typed_config"]
    assert context["require_client_certificate"] is True
    validation = context["common_tls_context"]["combined_validation_context"]
    matchers = validation["default_validation_context"]["match_typed_subject_alt_names"]
    # The trailing slash matters: spiffe://example.org.evil/... must not match.
    assert matchers == [{"san_type": "URI", "matcher": {"prefix": "spiffe://example.org/"}}]


def test_the_test_bootstrap_with_a_bypass_route_passes_validate_mode(tmp_path: Path) -> None:
    document = server_bootstrap(
        sds_socket=tmp_path / "sds.sock",
        authz_socket=tmp_path / "authz.sock",
        app_port=8080,
        bypass_prefix="/direct/",
    )
    config = tmp_path / "bench-server.yaml"
    config.write_text(yaml.safe_dump(document))
    result = validate_bootstrap(config)
    assert result.returncode == 0, (result.stdout + result.stderr)[-2000:]
