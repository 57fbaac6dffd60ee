"""``file-cert:`` and ``file-root:`` secrets: PEM files on disk, re-published on change.

A source is created the first time a stream asks for its name. Its files are loaded,
validated and published to the shared cache; their directories are watched (debounced),
and every change reloads them. A file that is missing or invalid is logged and counted,
and the previously published secret stays in place. Only files under the configured
``allowed_dirs`` can be served (none by default): the SDS socket would otherwise hand
any PEM key the agent can read to whoever can connect.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

from citadel.identity.clock import Clock
from citadel.identity.pem import MAX_PEM_BYTES
from node_agent.errors import AgentError, SecretValidationError, UnknownResourceError
from node_agent.file_watch import DirectoryWatcher
from node_agent.metrics import AgentMetrics
from node_agent.resource_names import FileCertificateName, FileRootName
from node_agent.secret_cache import SecretCache
from node_agent.secret_validation import ValidateSecret, load_tls_secret, load_trust_bundle_secret
from node_agent.secrets import Secret

__all__ = ["FileSecretSources"]

_log = logging.getLogger(__name__)

FileName = FileCertificateName | FileRootName


def _read(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PEM_BYTES + 1)
    except OSError as exc:
        raise SecretValidationError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if len(data) > MAX_PEM_BYTES:
        raise SecretValidationError(f"{path} is larger than {MAX_PEM_BYTES} bytes")
    return data


class FileSecretSources:
    def __init__(
        self,
        *,
        cache: SecretCache,
        clock: Clock,
        watcher: DirectoryWatcher,
        validator: ValidateSecret,
        metrics: AgentMetrics,
        allowed_dirs: Sequence[Path] = (),
    ) -> None:
        self._cache = cache
        self._clock = clock
        self._watcher = watcher
        self._validate = validator
        self._metrics = metrics
        self._allowed = tuple(Path(os.path.normpath(d)) for d in allowed_dirs)
        self._sources: dict[str, FileName] = {}
        self._lock = threading.Lock()

    def _check_allowed(self, resource: FileName) -> None:
        if not self._allowed:
            raise UnknownResourceError(
                f"resource {resource.name[:200]!r}: file-mounted secrets are disabled "
                "(list their directories in file_secrets.allowed_dirs)"
            )
        paths = (
            (resource.cert_path, resource.key_path)
            if isinstance(resource, FileCertificateName)
            else (resource.path,)
        )
        for path in paths:
            if not any(path == d or d in path.parents for d in self._allowed):
                raise UnknownResourceError(
                    f"resource {resource.name[:200]!r}: {path} is outside the allowed "
                    "directories (file_secrets.allowed_dirs)"
                )

    def ensure(self, resource: FileName) -> None:
        """Start serving ``resource`` (idempotent).

        Raises:
            UnknownResourceError: file secrets are disabled or the path is not allowed.
        """
        self._check_allowed(resource)
        with self._lock:
            if resource.name in self._sources:
                return
            self._sources[resource.name] = resource
        directories = (
            {resource.cert_path.parent, resource.key_path.parent}
            if isinstance(resource, FileCertificateName)
            else {resource.path.parent}
        )
        for directory in sorted(directories):
            self._watcher.watch(directory, functools.partial(self.reload, resource.name))
        self.reload(resource.name)

    def reload(self, name: str) -> bool:
        """Re-read the files behind ``name``; publish when valid and changed."""
        with self._lock:
            resource = self._sources.get(name)
        if resource is None:
            return False
        try:
            secret = self._load(resource)
            self._validate(secret, self._clock.now())
        except AgentError as exc:
            self._metrics.secrets_rejected.labels("file").inc()
            kept = "keeping the previous one" if self._cache.get(name) else "nothing to serve"
            _log.warning("file secret %s rejected (%s); %s", name[:200], exc.message, kept)
            return False
        if self._cache.publish(secret) is not None:
            _log.info("file secret published: %s", secret.describe())
        return True

    @staticmethod
    def _load(resource: FileName) -> Secret:
        if isinstance(resource, FileCertificateName):
            return load_tls_secret(
                resource.name, _read(resource.cert_path), _read(resource.key_path)
            )
        return load_trust_bundle_secret(resource.name, _read(resource.path))
