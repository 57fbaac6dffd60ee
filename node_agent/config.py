"""The agent's configuration: a YAML or JSON file, then ``CITADEL_AGENT_*`` overrides.

Every leaf key has an environment override named after its path:
``ca.address`` -> ``CITADEL_AGENT_CA_ADDRESS``, ``sds.socket_path`` ->
``CITADEL_AGENT_SDS_SOCKET_PATH``. Unknown keys, wrong types and invalid values are
reported as :class:`ConfigError` naming the key (and suggesting a close match).

Example::

    spiffe_id: spiffe://example.org/ns/default/sa/web
    ca:
      address: 127.0.0.1:15012
      root_bundle: /etc/citadel/root-cert.pem
      credential: {type: token_file, path: /var/run/secrets/tokens/citadel-token}
    sds: {socket_path: /run/citadel-agent/sds.sock}
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from citadel.identity.errors import InvalidSpiffeIdError
from citadel.identity.keys import KeyType
from citadel.identity.spiffe_id import SpiffeId
from node_agent.config_document import Section, apply_env, check_keys
from node_agent.entries.settings import SCHEMA as ENTRY_SCHEMA
from node_agent.entries.settings import (
    EntrySettings,
    parse_entry_settings,
    parse_workload_api,
)
from node_agent.errors import ConfigError
from node_agent.rotation import BackoffPolicy, RotationPolicy
from node_agent.workload_api.server import WorkloadApiConfig

__all__ = [
    "ENV_PREFIX",
    "AgentConfig",
    "CaSettings",
    "CredentialSettings",
    "FileSecretSettings",
    "SdsSettings",
    "StatusSettings",
    "load_config",
    "parse_config",
]

ENV_PREFIX = "CITADEL_AGENT_"
MAX_CONFIG_BYTES = 1024 * 1024
CREDENTIAL_TYPES = ("token_file", "join_token", "certificate")
LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_BUNDLE_REFRESH = timedelta(seconds=2)

_NOT_SETTINGS = frozenset({f"{ENV_PREFIX}CONFIG"})  # the CLI's config-path variable

# The schema: nested keys -> leaf type names. Drives validation, env overrides, and docs.
_SCHEMA: dict[str, Any] = {
    "spiffe_id": "str",
    "key_type": "str",
    "ttl_seconds": "seconds",
    "log_level": "str",
    "output_dir": "path",
    "ca": {
        "address": "str",
        "mtls_address": "str",
        "root_bundle": "path",
        "server_name": "str",
        "timeout_seconds": "seconds",
        "cluster_id": "str",
        "bundle_refresh_seconds": "seconds",
        "credential": {
            "type": "str",
            "path": "path",
            "token": "str",
            "cert_file": "path",
            "key_file": "path",
        },
    },
    "rotation": {
        "ratio": "float",
        "jitter": "float",
        "renew_with_certificate": "bool",
    },
    "backoff": {
        "initial_seconds": "seconds",
        "max_seconds": "seconds",
        "multiplier": "float",
        "jitter": "float",
    },
    "sds": {"enabled": "bool", "socket_path": "path"},
    "file_secrets": {"allowed_dirs": "paths", "debounce_seconds": "seconds"},
    "status": {"address": "str", "port": "int"},
    **ENTRY_SCHEMA,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class CredentialSettings:
    type: str
    path: Path | None = None
    token: str | None = field(default=None, repr=False)
    cert_file: Path | None = None
    key_file: Path | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CaSettings:
    """Where the CA is and how the agent trusts it.

    Attributes:
        root_bundle: the roots to trust the CA with until its own bundle is accepted.
        bundle_refresh: how often the CA's trust bundle and CRLs are polled (None: never;
            ``ROOTCA`` is then the root file).
    """

    address: str
    root_bundle: Path
    credential: CredentialSettings
    mtls_address: str | None = None
    server_name: str | None = None
    timeout: timedelta = timedelta(seconds=10)
    cluster_id: str | None = None
    bundle_refresh: timedelta | None = DEFAULT_BUNDLE_REFRESH


@dataclass(frozen=True, kw_only=True, slots=True)
class SdsSettings:
    enabled: bool = True
    socket_path: Path = Path("/run/citadel-agent/sds.sock")


@dataclass(frozen=True, kw_only=True, slots=True)
class FileSecretSettings:
    allowed_dirs: tuple[Path, ...] = ()
    debounce: timedelta = timedelta(milliseconds=200)


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusSettings:
    address: str = "127.0.0.1"
    port: int = 15021


@dataclass(frozen=True, kw_only=True, slots=True)
class AgentConfig:
    spiffe_id: SpiffeId
    ca: CaSettings
    key_type: KeyType = KeyType.EC_P256
    ttl: timedelta | None = None
    rotation: RotationPolicy = field(default_factory=RotationPolicy)
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    renew_with_certificate: bool = True
    sds: SdsSettings = field(default_factory=SdsSettings)
    output_dir: Path | None = None
    file_secrets: FileSecretSettings = field(default_factory=FileSecretSettings)
    status: StatusSettings = field(default_factory=StatusSettings)
    log_level: str = "info"
    entries: EntrySettings | None = None
    workload_api: WorkloadApiConfig | None = None


def _credential(section: Section) -> CredentialSettings:
    kind = section.text("type", required=True)
    if kind not in CREDENTIAL_TYPES:
        raise ConfigError(
            f"'ca.credential.type' must be one of {', '.join(CREDENTIAL_TYPES)}, not {kind!r}"
        )
    settings = CredentialSettings(
        type=kind,
        path=section.path("path"),
        token=section.text("token"),
        cert_file=section.path("cert_file"),
        key_file=section.path("key_file"),
    )
    if kind == "token_file" and settings.path is None:
        raise ConfigError("'ca.credential.path' is required for a token_file credential")
    if kind == "join_token" and (settings.path is None) == (settings.token is None):
        raise ConfigError(
            "a join_token credential needs exactly one of 'ca.credential.path' "
            "or 'ca.credential.token'"
        )
    if kind == "certificate" and (settings.cert_file is None or settings.key_file is None):
        raise ConfigError(
            "'ca.credential.cert_file' and 'ca.credential.key_file' are required "
            "for a certificate credential"
        )
    return settings


def _absolute(path: Path, key: str) -> Path:
    if not path.is_absolute():
        raise ConfigError(f"'{key}' must be an absolute path, not {str(path)[:200]!r}")
    return path


def parse_config(doc: Any, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Build an :class:`AgentConfig` from a parsed document plus environment overrides.

    Raises:
        ConfigError: the message names the offending key.
    """
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError("the configuration must be a mapping of keys to values")
    doc = json.loads(json.dumps(doc, default=str))  # a deep, plain copy
    apply_env(doc, env if env is not None else {}, _SCHEMA, ENV_PREFIX, ignore=_NOT_SETTINGS)
    check_keys(doc, _SCHEMA)
    top = Section(doc, "")
    raw_id = top.text("spiffe_id", required=True)
    assert raw_id is not None
    try:
        spiffe_id = SpiffeId.parse(raw_id)
    except InvalidSpiffeIdError as exc:
        raise ConfigError(f"'spiffe_id' is invalid: {exc.message}") from exc
    if spiffe_id.is_trust_domain_id:
        raise ConfigError("'spiffe_id' must name a workload (it needs a path)")
    key_type_name = top.text("key_type", KeyType.EC_P256.value)
    try:
        key_type = KeyType(key_type_name or "")
    except ValueError as exc:
        choices = ", ".join(k.value for k in KeyType)
        raise ConfigError(f"'key_type' must be one of {choices}") from exc

    ca = top.section("ca")
    if not top.has("ca"):
        raise ConfigError("'ca' is required (address, root_bundle, credential)")
    credential = _credential(ca.section("credential"))
    root_bundle = ca.path("root_bundle", required=True)
    address = ca.text("address", required=True)
    assert root_bundle is not None and address is not None
    timeout = ca.seconds("timeout_seconds", timedelta(seconds=10))
    assert timeout is not None
    refresh_seconds = ca.number("bundle_refresh_seconds", DEFAULT_BUNDLE_REFRESH.total_seconds())
    if not 0 <= refresh_seconds <= 3600:
        raise ConfigError("'ca.bundle_refresh_seconds' must be between 0 (off) and 3600")
    refresh = timedelta(seconds=refresh_seconds)

    rotation = top.section("rotation")
    backoff = top.section("backoff")
    try:
        rotation_policy = RotationPolicy(
            ratio=rotation.number("ratio", 0.5), jitter_fraction=rotation.number("jitter", 0.01)
        )
        backoff_policy = BackoffPolicy(
            initial=backoff.seconds("initial_seconds", timedelta(seconds=1)) or timedelta(0),
            maximum=backoff.seconds("max_seconds", timedelta(seconds=60)) or timedelta(0),
            multiplier=backoff.number("multiplier", 2.0),
            jitter_fraction=backoff.number("jitter", 0.2),
        )
    except ValueError as exc:
        raise ConfigError(f"rotation/backoff settings are invalid: {exc}") from exc

    sds = top.section("sds")
    socket_path = sds.path("socket_path") or SdsSettings().socket_path
    status = top.section("status")
    port = status.integer("port", StatusSettings().port)
    if not 0 <= port <= 65535:
        raise ConfigError("'status.port' must be between 0 and 65535")
    files = top.section("file_secrets")
    output_dir = top.path("output_dir")
    log_level = (top.text("log_level", "info") or "info").lower()
    if log_level not in LOG_LEVELS:
        raise ConfigError(f"'log_level' must be one of {', '.join(LOG_LEVELS)}")

    workload_api = parse_workload_api(top.section("workload_api"))
    entries = (
        parse_entry_settings(
            top.section("entries"), rotation=rotation_policy, backoff=backoff_policy
        )
        if top.has("entries") or workload_api is not None
        else None
    )

    return AgentConfig(
        spiffe_id=spiffe_id,
        entries=entries,
        workload_api=workload_api,
        key_type=key_type,
        ttl=top.seconds("ttl_seconds", None),
        ca=CaSettings(
            address=address,
            mtls_address=ca.text("mtls_address"),
            root_bundle=_absolute(root_bundle, "ca.root_bundle"),
            credential=credential,
            server_name=ca.text("server_name"),
            timeout=timeout,
            cluster_id=ca.text("cluster_id"),
            bundle_refresh=refresh if refresh else None,
        ),
        rotation=rotation_policy,
        backoff=backoff_policy,
        # A join token works once: renewals must use the certificate it bought.
        renew_with_certificate=rotation.boolean(
            "renew_with_certificate", credential.type != "token_file"
        )
        or credential.type == "join_token",
        sds=SdsSettings(
            enabled=sds.boolean("enabled", True),
            socket_path=_absolute(socket_path, "sds.socket_path"),
        ),
        output_dir=_absolute(output_dir, "output_dir") if output_dir is not None else None,
        file_secrets=FileSecretSettings(
            allowed_dirs=tuple(
                _absolute(p, "file_secrets.allowed_dirs") for p in files.paths("allowed_dirs")
            ),
            debounce=files.seconds("debounce_seconds", timedelta(milliseconds=200))
            or timedelta(milliseconds=200),
        ),
        status=StatusSettings(
            address=status.text("address", "127.0.0.1") or "127.0.0.1", port=port
        ),
        log_level=log_level,
    )


def load_config(path: Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read and parse a YAML or JSON config file, then apply ``CITADEL_AGENT_*`` overrides.

    Raises:
        ConfigError: unreadable file, syntax error (with its line), or an invalid setting.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text") from exc
    try:
        doc = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"config file {path}: invalid JSON at line {exc.lineno}: {exc.msg}"
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise ConfigError(f"config file {path}: invalid YAML{where}: {problem}") from exc
    try:
        return parse_config(doc, env if env is not None else dict(os.environ))
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc.message}") from exc
