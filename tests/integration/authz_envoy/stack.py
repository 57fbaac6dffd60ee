"""The authz mesh: two Envoys with node-agent certificates, the server one asking ext_authz.

    client app -> client Envoy ---mTLS---> server Envoy --ext_authz--> citadel authz serve
    (CLIENT_ID)    (SDS: client agent)      (SDS: server agent)          (Unix socket)
    other app  -> other Envoy  ---mTLS--->      |  allowed only
    (OTHER_ID)     (SDS: other agent)           v
                                               app (records every request it receives)

The server Envoy runs ``deploy/envoy/server-sidecar-ext-authz.yaml``, the clients
``deploy/envoy/client-sidecar.yaml``; the CA is the real ``citadel serve`` and each agent a
real ``citadel-agent run`` (helpers from tests/integration/node_agent). The benchmark
(tests/bench/bench_ext_authz.py) builds its smaller stack from the same functions. Every
process is stopped by PID, in reverse start order.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tests.integration.authz_envoy.authz_process import AuthzServeProcess
from tests.integration.node_agent.agent_process import AgentProcess
from tests.integration.node_agent.mesh import App, agent_config, get_via
from tests.peers.citadel_server import CitadelServer, start_citadel_server
from tests.peers.envoy import (
    EnvoyProcess,
    adapt_cluster_endpoint,
    adapt_for_test,
    envoy_binary,
    load_example,
    wait_until,
)

__all__ = [
    "CLIENT_ID",
    "OTHER_ID",
    "SERVER_BOOTSTRAP",
    "SERVER_ID",
    "AuthzMesh",
    "Started",
    "authz_mesh",
    "client_bootstrap",
    "server_bootstrap",
    "set_cluster_pipe",
    "start_agent",
    "start_authz",
    "start_ca",
]

CLIENT_ID = "spiffe://example.org/ns/default/sa/client"
SERVER_ID = "spiffe://example.org/ns/default/sa/server"
OTHER_ID = "spiffe://example.org/ns/default/sa/other"
SERVER_BOOTSTRAP = "server-sidecar-ext-authz.yaml"
EXT_AUTHZ_CLUSTER = "citadel_ext_authz"
_READY_TIMEOUT_S = 20.0
_RELOAD_TIMEOUT_S = 10.0


class _Stoppable(Protocol):
    def stop(self) -> None: ...


_T = TypeVar("_T", bound=_Stoppable)


class Started:
    """Processes in start order; :meth:`stop_all` stops them in reverse (by PID)."""

    def __init__(self) -> None:
        self._items: list[_Stoppable] = []

    def add(self, item: _T) -> _T:
        self._items.append(item)
        return item

    def stop_all(self) -> None:
        for item in reversed(self._items):
            with contextlib.suppress(Exception):  # stop the rest even if one stop fails
                item.stop()
        self._items.clear()


# --- bootstraps ----------------------------------------------------------------------------
def set_cluster_pipe(document: dict[str, Any], cluster: str, path: Path) -> None:
    """Point a static cluster at a Unix socket (``adapt_for_test`` sets every pipe to SDS)."""
    for entry in document["static_resources"]["clusters"]:
        if entry["name"] == cluster:
            [endpoints] = entry["load_assignment"]["endpoints"]
            [lb] = endpoints["lb_endpoints"]
            lb["endpoint"]["address"] = {"pipe": {"path": str(path)}}
            return
    raise KeyError(cluster)


def server_bootstrap(
    *, sds_socket: Path, authz_socket: Path, app_port: int, bypass_prefix: str | None = None
) -> dict[str, Any]:
    """The ext_authz server sidecar example on test ports and sockets.

    ``bypass_prefix`` adds a route to the same app whose ext_authz is disabled per route
    (``ExtAuthzPerRoute.disabled``): the benchmark's baseline path.
    """
    document = adapt_for_test(load_example(SERVER_BOOTSTRAP), sds_socket=sds_socket)
    set_cluster_pipe(document, EXT_AUTHZ_CLUSTER, authz_socket)
    adapt_cluster_endpoint(document, "local_app", app_port)
    if bypass_prefix is not None:
        manager = document["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        [host] = manager["typed_config"]["route_config"]["virtual_hosts"]
        host["routes"].insert(
            0,
            {
                "match": {"prefix": bypass_prefix},
                "route": {"cluster": "local_app"},
                "typed_per_filter_config": {
                    "envoy.filters.http.ext_authz": {
                        "@type": "type.googleapis.com/"
                        "envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute",
                        "disabled": True,
                    }
                },
            },
        )
    return document


def client_bootstrap(*, sds_socket: Path, inbound_port: int, node_id: str) -> dict[str, Any]:
    document = adapt_for_test(
        load_example("client-sidecar.yaml"), sds_socket=sds_socket, node_id=node_id
    )
    adapt_cluster_endpoint(document, "server_mtls", inbound_port)
    return document


# --- processes -----------------------------------------------------------------------------
def start_ca(started: Started, base: Path) -> tuple[CitadelServer, Path]:
    """``citadel serve`` and its root bundle written to ``base/roots.pem``."""
    ca = started.add(start_citadel_server(base / "ca"))
    roots = base / "roots.pem"
    roots.write_bytes(ca.root_bundle_pem())
    return ca, roots


def start_agent(
    started: Started, base: Path, ca: CitadelServer, name: str, spiffe_id: str, **extra: Any
) -> AgentProcess:
    """A ``citadel-agent`` for ``spiffe_id``; SDS on ``base/name/sds.sock``."""
    config = agent_config(base, name, spiffe_id, ca, ca.create_join_token(spiffe_id), **extra)
    agent = started.add(AgentProcess(config, base / name, name=f"{name}-agent"))
    return agent.start()


def start_authz(started: Started, base: Path, policy_dir: Path) -> AuthzServeProcess:
    process = AuthzServeProcess(policy_dir, base / "authz" / "authz.sock", base / "authz")
    return started.add(process).start()


def write_policy_files(policy_dir: Path, files: Mapping[str, str]) -> None:
    """Make ``files`` the whole policy set: each written aside and renamed into place (as a
    ConfigMap update does; hidden names are not loaded), every other policy file removed."""
    policy_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        staging = policy_dir / f".{name}.new"
        staging.write_text(text)
        os.replace(staging, policy_dir / name)
    for path in policy_dir.glob("*.yaml"):
        if path.name not in files:
            path.unlink()


# --- the mesh of the integration tests -------------------------------------------------------
@dataclass
class AuthzMesh:
    base: Path
    ca: CitadelServer
    app: App
    policy_dir: Path
    authz: AuthzServeProcess
    agents: dict[str, AgentProcess]
    server_envoy: EnvoyProcess
    client_envoys: dict[str, EnvoyProcess]

    def outbound_port(self, client: str) -> int:
        return self.client_envoys[client].listener_port("outbound")

    def get(
        self, client: str, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, str]:
        """One request from ``client``'s app through its Envoy to the server Envoy."""
        return get_via(self.outbound_port(client), path, headers=headers)

    def apply_policy(self, files: Mapping[str, str], *, timeout: float = _RELOAD_TIMEOUT_S) -> None:
        """Replace the policy files and wait until ``citadel authz serve`` has applied them."""
        before = self.authz.loads()
        write_policy_files(self.policy_dir, files)
        if not wait_until(lambda: self.authz.loads() > before, timeout=timeout):
            raise AssertionError(f"policy was not reloaded:\n{self.authz.log_tail()}")

    @property
    def pids(self) -> dict[str, int]:
        """Every process of the mesh, to show that nothing was restarted."""
        pids = {"authz": self.authz.pid, "server-envoy": self.server_envoy.pid}
        pids.update({f"{n}-envoy": e.pid for n, e in self.client_envoys.items()})
        pids.update({f"{n}-agent": a.pid for n, a in self.agents.items()})
        return pids


@contextlib.contextmanager
def authz_mesh(initial_policy: Mapping[str, str]) -> Iterator[AuthzMesh]:
    """Start the whole mesh with ``initial_policy``; wait until the client gets through."""
    envoy_binary()
    # Unix socket paths must stay within 107 bytes: keep the tree short.
    base = Path(tempfile.mkdtemp(prefix="az-", dir="/tmp"))
    started = Started()
    try:
        ca, _ = start_ca(started, base)
        app = started.add(App())
        policy_dir = base / "policies"
        write_policy_files(policy_dir, initial_policy)
        authz = start_authz(started, base, policy_dir)
        identities = {"server": SERVER_ID, "client": CLIENT_ID, "other": OTHER_ID}
        agents = {
            name: start_agent(started, base, ca, name, spiffe_id)
            for name, spiffe_id in identities.items()
        }
        server_envoy = started.add(
            EnvoyProcess(
                server_bootstrap(
                    sds_socket=base / "server" / "sds.sock",
                    authz_socket=authz.socket_path,
                    app_port=app.port,
                ),
                base / "envoy-server",
                "server-envoy",
            )
        ).start()
        inbound = server_envoy.listener_port("inbound_mtls")
        clients = {
            name: started.add(
                EnvoyProcess(
                    client_bootstrap(
                        sds_socket=base / name / "sds.sock",
                        inbound_port=inbound,
                        node_id=f"{name}-sidecar~example.org~{name}",
                    ),
                    base / f"envoy-{name}",
                    f"{name}-envoy",
                )
            ).start()
            for name in ("client", "other")
        }
        mesh = AuthzMesh(
            base=base,
            ca=ca,
            app=app,
            policy_dir=policy_dir,
            authz=authz,
            agents=agents,
            server_envoy=server_envoy,
            client_envoys=clients,
        )
        _wait_for_certificates(mesh)
        yield mesh
    finally:
        started.stop_all()
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_certificates(mesh: AuthzMesh) -> None:
    """Until both clients reach the server Envoy over mTLS (503: certificates not there yet)."""
    for client in mesh.client_envoys:
        seen: list[int] = []

        def through(client: str = client, seen: list[int] = seen) -> bool:
            try:
                seen.append(mesh.get(client, "/ready-probe")[0])
            except OSError:
                seen.append(0)
            return seen[-1] in (200, 401, 403)

        if not wait_until(through, timeout=_READY_TIMEOUT_S, interval=0.1):
            raise RuntimeError(
                f"{client} never reached the server Envoy (last {seen[-1:]}):\n"
                f"{mesh.client_envoys[client].log_tail()}\n{mesh.server_envoy.log_tail()}"
            )
