"""SDS resource names the agent understands.

- ``default``: the workload certificate (chain + key), from the CA.
- ``ROOTCA``: the trust bundle (validation context), from the configured root bundle.
- ``file-cert:<cert path>~<key path>``: a certificate and key mounted as files.
- ``file-root:<path>``: trusted CA certificates mounted as a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from node_agent.errors import UnknownResourceError
from node_agent.secrets import DEFAULT_CERTIFICATE, DEFAULT_ROOT

__all__ = [
    "FILE_CERT_PREFIX",
    "FILE_ROOT_PREFIX",
    "FileCertificateName",
    "FileRootName",
    "ResourceName",
    "StaticName",
    "parse_resource_name",
]

FILE_CERT_PREFIX = "file-cert:"
FILE_ROOT_PREFIX = "file-root:"
MAX_NAME_BYTES = 4096


@dataclass(frozen=True, slots=True)
class StaticName:
    name: str


@dataclass(frozen=True, slots=True)
class FileCertificateName:
    name: str
    cert_path: Path
    key_path: Path


@dataclass(frozen=True, slots=True)
class FileRootName:
    name: str
    path: Path


ResourceName = StaticName | FileCertificateName | FileRootName


def _file_path(raw: str, name: str) -> Path:
    if not raw:
        raise UnknownResourceError(f"resource {name[:200]!r} names an empty path")
    if "\0" in raw:
        raise UnknownResourceError("resource name contains a NUL byte")
    if not os.path.isabs(raw):
        raise UnknownResourceError(f"resource {name[:200]!r} must use absolute paths")
    if ".." in Path(raw).parts:
        raise UnknownResourceError(f"resource {name[:200]!r} must not contain '..'")
    return Path(os.path.normpath(raw))


def parse_resource_name(name: str) -> ResourceName:
    """Classify an SDS resource name.

    Raises:
        UnknownResourceError: a name the agent does not serve; the message says why.
    """
    if len(name.encode("utf-8", errors="replace")) > MAX_NAME_BYTES:
        raise UnknownResourceError("resource name is too long")
    if name in (DEFAULT_CERTIFICATE, DEFAULT_ROOT):
        return StaticName(name)
    if name.startswith(FILE_CERT_PREFIX):
        cert, sep, key = name[len(FILE_CERT_PREFIX) :].partition("~")
        if not sep:
            raise UnknownResourceError(
                f"resource {name[:200]!r} must look like file-cert:<cert path>~<key path>"
            )
        return FileCertificateName(name, _file_path(cert, name), _file_path(key, name))
    if name.startswith(FILE_ROOT_PREFIX):
        return FileRootName(name, _file_path(name[len(FILE_ROOT_PREFIX) :], name))
    raise UnknownResourceError(
        f"unknown SDS resource {name[:200]!r}: this agent serves 'default', 'ROOTCA', "
        "'file-cert:<cert>~<key>' and 'file-root:<path>'"
    )
