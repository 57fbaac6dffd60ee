"""The generated Workload API keeps the standard's wire names and field numbers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from citadel._proto import workload_pb2

ROOT = Path(__file__).resolve().parents[4]

FIELDS = {
    "X509SVIDRequest": {},
    "X509SVIDResponse": {"svids": 1, "crl": 2, "federated_bundles": 3},
    "X509SVID": {"spiffe_id": 1, "x509_svid": 2, "x509_svid_key": 3, "bundle": 4, "hint": 5},
    "X509BundlesRequest": {},
    "X509BundlesResponse": {"crl": 1, "bundles": 2},
    "JWTSVIDRequest": {"audience": 1, "spiffe_id": 2},
    "JWTSVIDResponse": {"svids": 1},
    "JWTSVID": {"spiffe_id": 1, "svid": 2, "hint": 3},
    "JWTBundlesRequest": {},
    "JWTBundlesResponse": {"bundles": 1},
    "ValidateJWTSVIDRequest": {"audience": 1, "svid": 2},
    "ValidateJWTSVIDResponse": {"spiffe_id": 1, "claims": 2},
}


@pytest.mark.parametrize("message", sorted(FIELDS), ids=sorted(FIELDS))
def test_message_has_no_package_and_the_standard_field_numbers(message: str) -> None:
    descriptor = workload_pb2.DESCRIPTOR.message_types_by_name[message]
    assert descriptor.full_name == message  # no package
    assert {f.name: f.number for f in descriptor.fields} == FIELDS[message]


def test_field_types_match_the_standard() -> None:
    types = workload_pb2.DESCRIPTOR.message_types_by_name
    svid = types["X509SVID"].fields_by_name
    assert svid["x509_svid"].type == svid["x509_svid"].TYPE_BYTES
    assert svid["x509_svid_key"].type == svid["x509_svid_key"].TYPE_BYTES
    bundles = types["X509BundlesResponse"].fields_by_name["bundles"].message_type
    assert bundles is not None and bundles.GetOptions().map_entry
    assert bundles.fields_by_name["value"].type == bundles.fields_by_name["value"].TYPE_BYTES
    claims = types["ValidateJWTSVIDResponse"].fields_by_name["claims"]
    assert claims.message_type is not None
    assert claims.message_type.full_name == "google.protobuf.Struct"
    audience = types["JWTSVIDRequest"].fields_by_name["audience"]
    assert audience.is_repeated


def test_service_paths_are_slash_spiffeworkloadapi_slash_method() -> None:
    service = workload_pb2.DESCRIPTOR.services_by_name["SpiffeWorkloadAPI"]
    assert service.full_name == "SpiffeWorkloadAPI"
    shapes = {m.name: (m.client_streaming, m.server_streaming) for m in service.methods}
    assert shapes == {
        "FetchX509SVID": (False, True),
        "FetchX509Bundles": (False, True),
        "FetchJWTSVID": (False, False),
        "FetchJWTBundles": (False, True),
        "ValidateJWTSVID": (False, False),
    }


def _imports_spiffe(path: Path) -> bool:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            a.name == "spiffe" or a.name.startswith("spiffe.") for a in node.names
        ):
            return True
        if (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and (node.module == "spiffe" or node.module.startswith("spiffe."))
        ):
            return True
    return False


def test_py_spiffe_is_only_used_from_standalone_client_scripts() -> None:
    """py-spiffe registers the same unpackaged message names in protobuf's default pool;
    importing it next to ``citadel._proto.workload_pb2`` fails ("duplicate symbol"). It
    may only appear in ``*_client.py`` scripts that tests run as separate processes."""
    offenders: list[Path] = []
    scripts: list[Path] = []
    for package in ("citadel", "node_agent", "tests"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if _imports_spiffe(path):
                (scripts if path.name.endswith("_client.py") else offenders).append(path)
    assert offenders == []
    for script in scripts:  # nobody imports the scripts themselves
        module = script.stem
        importers = [
            p
            for package in ("citadel", "node_agent", "tests")
            for p in (ROOT / package).rglob("*.py")
            if p != script and f"import {module}" in p.read_text()
        ]
        assert importers == [], f"{script.name} must run as a subprocess, not be imported"
