from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from node_agent.errors import SocketInUseError, SocketPathError
from node_agent.sds.socket_path import MAX_SOCKET_PATH_BYTES, prepare_socket_path

_LISTENER = """
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(sys.argv[1]); s.listen(8)
print("listening", flush=True)
time.sleep(60)
"""


@pytest.fixture
def other_process_listening(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    path = tmp_path / "run" / "sds.sock"
    path.parent.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", _LISTENER, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "listening"
        yield path, process.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.wait(5)


def test_socket_owned_by_another_live_process_refuses_to_start(
    other_process_listening: tuple[Path, int],
) -> None:
    path, pid = other_process_listening
    with pytest.raises(SocketInUseError) as caught:
        prepare_socket_path(path)
    assert "in use by another live process" in caught.value.message
    assert f"pid {pid}" in caught.value.message
    assert path.exists()  # never stolen


def test_stale_socket_without_listener_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "sds.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens
    assert path.exists()
    prepare_socket_path(path)
    assert not path.exists()


def test_path_longer_than_the_unix_limit_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / ("s" * (MAX_SOCKET_PATH_BYTES - len(str(tmp_path))))
    assert len(str(path).encode()) > MAX_SOCKET_PATH_BYTES
    with pytest.raises(SocketPathError, match="at most 107 bytes"):
        prepare_socket_path(path)


def test_path_of_exactly_107_bytes_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / ("s" * (MAX_SOCKET_PATH_BYTES - len(str(tmp_path)) - 1))
    assert len(str(path).encode()) == MAX_SOCKET_PATH_BYTES
    assert prepare_socket_path(path) == path


def test_regular_file_at_the_socket_path_is_left_alone_and_refused(tmp_path: Path) -> None:
    path = tmp_path / "sds.sock"
    path.write_text("precious")
    with pytest.raises(SocketPathError, match="is not a socket"):
        prepare_socket_path(path)
    assert path.read_text() == "precious"


def test_missing_directory_is_created_with_mode_0750(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        prepare_socket_path(tmp_path / "a" / "b" / "sds.sock")
    finally:
        os.umask(old)
    assert (tmp_path / "a" / "b").stat().st_mode & 0o777 == 0o750


def test_relative_path_is_refused() -> None:
    with pytest.raises(SocketPathError, match="absolute"):
        prepare_socket_path(Path("relative/sds.sock"))
