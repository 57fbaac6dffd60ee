"""The import direction of DESIGN.md: identity <- authz <- {ca, server, store, k8s, node_agent}.

The node agent runs on every node; it must never pull in the CA's server, store, k8s or
signing code.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AGENT_FORBIDDEN = ("citadel.server", "citadel.store", "citadel.k8s", "citadel.ca")
IDENTITY_FORBIDDEN = (
    "citadel.authz",
    "citadel.ca",
    "citadel.server",
    "citadel.store",
    "citadel.k8s",
    "node_agent",
    "grpc",
    "sqlalchemy",
    "kubernetes",
)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _violations(package: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("node_agent", AGENT_FORBIDDEN), ("citadel/identity", IDENTITY_FORBIDDEN)],
    ids=["node-agent-stays-off-ca-internals", "identity-stays-network-free"],
)
def test_package_source_does_not_import_forbidden_layers(
    package: str, forbidden: tuple[str, ...]
) -> None:
    assert _violations(package, forbidden) == []


def test_importing_every_node_agent_module_loads_no_ca_internals() -> None:
    """Catches indirect imports too: load every agent module, then inspect sys.modules."""
    modules = sorted(
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "node_agent").rglob("*.py")
    )
    script = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    leaked = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in AGENT_FORBIDDEN)]
    assert leaked == []


def test_layering_check_detects_a_forbidden_import(tmp_path: Path) -> None:
    """The checker itself must be able to fail."""
    bad = tmp_path / "bad.py"
    bad.write_text("from citadel.store.repository import Repository\n")
    assert _imports(bad) == ["citadel.store.repository"]
    assert any(n.startswith("citadel.store") for n in _imports(bad))
