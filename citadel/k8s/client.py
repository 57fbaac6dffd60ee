"""Build a configured ``kubernetes`` API client from explicit settings, in-cluster or kubeconfig.

Every Citadel component talks to the API server through the real ``kubernetes`` client; this
module is the one place that decides where the server is and how to authenticate to it. No
global default configuration is touched: each :class:`kubernetes.client.ApiClient` carries its
own :class:`kubernetes.client.Configuration`.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import urllib3
from kubernetes import client as k8s
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.kube_config import load_kube_config

from citadel.k8s.errors import KubeConfigError

__all__ = [
    "SERVICE_ACCOUNT_DIR",
    "KubeApis",
    "KubeClientSettings",
    "build_configuration",
    "current_namespace",
    "in_cluster_settings",
    "kubeconfig_configuration",
    "load_configuration",
    "new_api_client",
]

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
# The kubelet rotates projected service-account tokens; re-read the file this often.
TOKEN_REREAD_SECONDS = 60.0
MAX_TOKEN_BYTES = 64 * 1024


@dataclass(frozen=True, kw_only=True)
class KubeClientSettings:
    """Where the API server is and how to authenticate to it.

    Attributes:
        host: base URL, ``https://10.96.0.1:443`` (``http://`` only for loopback test servers).
        token: a bearer token (never logged; excluded from ``repr``).
        token_file: a file holding the bearer token, re-read every minute (projected tokens).
        ca_file: the CA bundle that signs the API server's certificate.
        verify_tls: verify the server certificate (keep True outside tests).
    """

    host: str
    token: str | None = field(default=None, repr=False)
    token_file: Path | None = None
    ca_file: Path | None = None
    verify_tls: bool = True

    def __post_init__(self) -> None:
        if not self.host.startswith(("https://", "http://")):
            raise KubeConfigError("API server host must be an http(s):// URL")
        if self.token is not None and self.token_file is not None:
            raise KubeConfigError("give either a token or a token file, not both")


class _TokenFileReader:
    """Reads a bearer token file, at most once per :data:`TOKEN_REREAD_SECONDS`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._token = ""

    def read(self) -> str:
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= TOKEN_REREAD_SECONDS:
                self._token = _read_token(self._path)
                self._read_at = now
            return self._token

    def refresh_hook(self, configuration: k8s.Configuration) -> None:
        configuration.api_key["authorization"] = self.read()


def _read_token(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_TOKEN_BYTES + 1)
    except OSError as exc:
        raise KubeConfigError(f"cannot read the token file {path}: {exc.strerror}") from exc
    if len(raw) > MAX_TOKEN_BYTES:
        raise KubeConfigError(f"token file {path} is larger than {MAX_TOKEN_BYTES} bytes")
    token = raw.decode("ascii", errors="replace").strip()
    if not token:
        raise KubeConfigError(f"token file {path} is empty")
    return token


def _transport_retries() -> urllib3.Retry:
    """Retry only failures to *connect* (quickly, twice); never re-send a request that may
    have reached the server, nor re-open a watch behind the caller's back: the callers
    (list+watch loops, elections) retry with their own backoff and need to see failures."""
    return urllib3.Retry(
        total=2, connect=2, read=0, status=0, other=0, redirect=0, backoff_factor=0.1
    )


def build_configuration(settings: KubeClientSettings) -> k8s.Configuration:
    """A Configuration for ``settings`` (bearer token, CA bundle, TLS verification)."""
    configuration = k8s.Configuration(host=settings.host.rstrip("/"))
    configuration.retries = _transport_retries()
    configuration.verify_ssl = settings.verify_tls
    if settings.ca_file is not None:
        if not settings.ca_file.is_file():
            raise KubeConfigError(f"CA file {settings.ca_file} does not exist")
        configuration.ssl_ca_cert = str(settings.ca_file)
    if settings.token is not None or settings.token_file is not None:
        configuration.api_key_prefix["authorization"] = "Bearer"
        if settings.token_file is not None:
            reader = _TokenFileReader(settings.token_file)
            configuration.api_key["authorization"] = reader.read()
            configuration.refresh_api_key_hook = reader.refresh_hook  # type: ignore[assignment]
        elif settings.token is not None:
            configuration.api_key["authorization"] = settings.token
    return configuration


def in_cluster_settings(
    environ: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR
) -> KubeClientSettings:
    """Settings for a pod: ``KUBERNETES_SERVICE_HOST/PORT`` plus the mounted service account.

    Raises:
        KubeConfigError: not running in a pod (no environment or no token/CA files).
    """
    env = os.environ if environ is None else environ
    host = env.get("KUBERNETES_SERVICE_HOST", "")
    port = env.get("KUBERNETES_SERVICE_PORT", "")
    if not host or not port:
        raise KubeConfigError("not in a cluster: KUBERNETES_SERVICE_HOST/PORT are not set")
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    token_file = sa_dir / "token"
    ca_file = sa_dir / "ca.crt"
    for required in (token_file, ca_file):
        if not required.is_file():
            raise KubeConfigError(f"not in a cluster: {required} does not exist")
    return KubeClientSettings(host=f"https://{host}:{port}", token_file=token_file, ca_file=ca_file)


def kubeconfig_configuration(
    path: Path | None = None, context: str | None = None
) -> k8s.Configuration:
    """A Configuration from a kubeconfig file (``$KUBECONFIG`` or ``~/.kube/config`` if None).

    Raises:
        KubeConfigError: the file is missing or unusable.
    """
    configuration = k8s.Configuration()
    configuration.retries = _transport_retries()
    config_file = str(path) if path is not None else None
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=config_file,
            context=context,
            client_configuration=configuration,
            persist_config=False,
        )
    except (ConfigException, OSError, ValueError, TypeError, KeyError) as exc:
        where = config_file or "the default kubeconfig"
        raise KubeConfigError(f"cannot load {where}: {type(exc).__name__}") from exc
    return configuration


def load_configuration(
    *,
    settings: KubeClientSettings | None = None,
    kubeconfig: Path | None = None,
    context: str | None = None,
    environ: Mapping[str, str] | None = None,
    sa_dir: Path = SERVICE_ACCOUNT_DIR,
) -> k8s.Configuration:
    """Pick the configuration source: explicit settings, a kubeconfig, in-cluster, default file.

    Raises:
        KubeConfigError: no source is usable.
    """
    if settings is not None:
        return build_configuration(settings)
    if kubeconfig is not None:
        return kubeconfig_configuration(kubeconfig, context)
    env = os.environ if environ is None else environ
    if env.get("KUBERNETES_SERVICE_HOST"):
        return build_configuration(in_cluster_settings(env, sa_dir))
    return kubeconfig_configuration(None, context)


def new_api_client(configuration: k8s.Configuration) -> k8s.ApiClient:
    return k8s.ApiClient(configuration)


def current_namespace(
    environ: Mapping[str, str] | None = None, sa_dir: Path = SERVICE_ACCOUNT_DIR
) -> str:
    """The pod's namespace: ``$POD_NAMESPACE``, else the service account's namespace file.

    Raises:
        KubeConfigError: neither is available.
    """
    env = os.environ if environ is None else environ
    namespace = env.get("POD_NAMESPACE", "").strip()
    if namespace:
        return namespace
    try:
        namespace = (sa_dir / "namespace").read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise KubeConfigError("cannot tell the pod's namespace (set POD_NAMESPACE)") from exc
    if not namespace:
        raise KubeConfigError("the service account namespace file is empty")
    return namespace


@dataclass(frozen=True)
class KubeApis:
    """The API groups Citadel uses, sharing one ApiClient (one connection pool)."""

    core: k8s.CoreV1Api
    coordination: k8s.CoordinationV1Api

    @classmethod
    def from_client(cls, api_client: k8s.ApiClient) -> KubeApis:
        return cls(core=k8s.CoreV1Api(api_client), coordination=k8s.CoordinationV1Api(api_client))
