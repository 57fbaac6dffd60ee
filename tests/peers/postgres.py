"""A throwaway PostgreSQL server for tests, and a fresh database per test.

The server runs from the Debian ``postgresql`` binaries (``/usr/lib/postgresql/<v>/bin``),
as user ``postgres`` (via ``runuser`` when the tests run as root), on 127.0.0.1 with a free
port and a Unix socket in its own temporary directory, with trust authentication. It is
stopped by PID in teardown (``pg_ctl stop -m fast``, then SIGKILL if needed).

Fixtures (register with ``pytest_plugins = ["tests.peers.postgres"]`` in the top-level
conftest, or import them into a conftest):

* ``postgres_server``: session scope, the running :class:`PostgresServer`.
* ``postgres_url``: session scope, ``postgresql+psycopg://`` URL of its ``postgres`` database.
* ``postgres_db_url``: function scope, URL of a new, empty database, dropped afterwards.

Tests that need their own server (to stop it, say) use :func:`running_postgres`.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.peers import require_binary, require_peer

if TYPE_CHECKING:
    from psycopg import sql

__all__ = [
    "PostgresServer",
    "free_port",
    "postgres_bin_dir",
    "postgres_db_url",
    "postgres_server",
    "postgres_url",
    "restart_postgres",
    "running_postgres",
    "start_postgres",
    "stop_postgres",
]

_OS_USER = "postgres"
_DB_USER = "postgres"
_START_TIMEOUT_S = 30
_STOP_TIMEOUT_S = 15
_database_counter = itertools.count(1)


@dataclass(kw_only=True)
class PostgresServer:
    """A test server. ``pid`` is the current postmaster's (a restart updates it)."""

    host: str
    port: int
    socket_dir: Path
    data_dir: Path
    base_dir: Path
    bin_dir: Path
    pid: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{_DB_USER}@{self.host}:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={_DB_USER} dbname={database}"


def postgres_bin_dir() -> Path | None:
    """Where initdb/pg_ctl/postgres live: $PG_BIN, the newest Debian install, or PATH."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    debian = Path("/usr/lib/postgresql")
    if debian.is_dir():
        versions = sorted(
            (p for p in debian.iterdir() if p.name.isdigit()),
            key=lambda p: int(p.name),
            reverse=True,
        )
        candidates.extend(p / "bin" for p in versions)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).parent)
    for candidate in candidates:
        if all((candidate / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return candidate
    return None


def _as_server_user() -> list[str]:
    """Prefix that runs a command as the server's OS user (initdb refuses root)."""
    if os.geteuid() != 0:
        return []
    runuser = require_binary("runuser", hint="util-linux")
    return [runuser, "-u", _OS_USER, "--"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(args: list[str], *, timeout: float, log: Path) -> None:
    with log.open("ab") as out:
        subprocess.run(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=timeout, check=True
        )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pg_ctl_start(bin_dir: Path, data_dir: Path, socket_dir: Path, port: int, log: Path) -> int:
    """``pg_ctl start -w``; returns the postmaster's PID."""
    options = (
        f"-h 127.0.0.1 -p {port} -k {socket_dir} -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
    )
    _run(
        [
            *_as_server_user(),
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data_dir),
            "-l",
            str(log),
            "-w",
            "-t",
            str(_START_TIMEOUT_S),
            "-o",
            options,
            "start",
        ],
        timeout=_START_TIMEOUT_S + 10,
        log=log,
    )
    return int((data_dir / "postmaster.pid").read_text().splitlines()[0])


def start_postgres(*, attempts: int = 3) -> PostgresServer:
    """initdb into a new temporary directory and start a server; the caller must stop it."""
    bin_dir = postgres_bin_dir()
    require_peer(bin_dir is not None, "PostgreSQL server binaries (Debian package 'postgresql')")
    assert bin_dir is not None
    prefix = _as_server_user()
    base_dir = Path(tempfile.mkdtemp(prefix="citadel-pg-"))
    try:
        data_dir, socket_dir, log = base_dir / "data", base_dir / "sock", base_dir / "server.log"
        socket_dir.mkdir(mode=0o700)
        log.touch(mode=0o600)
        if prefix:
            owner = pwd.getpwnam(_OS_USER)
            for path in (base_dir, socket_dir, log):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        _run(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "--username",
                _DB_USER,
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ],
            timeout=120,
            log=log,
        )
        last_error: Exception | None = None
        for _ in range(attempts):
            port = free_port()
            try:
                pid = _pg_ctl_start(bin_dir, data_dir, socket_dir, port, log)
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
                last_error = exc  # most likely the port was taken meanwhile; try another
                continue
            return PostgresServer(
                host="127.0.0.1",
                port=port,
                socket_dir=socket_dir,
                data_dir=data_dir,
                base_dir=base_dir,
                bin_dir=bin_dir,
                pid=pid,
            )
        raise RuntimeError(
            f"PostgreSQL did not start; see {log}: {log.read_text()[-2000:]}"
        ) from last_error
    except BaseException:
        shutil.rmtree(base_dir, ignore_errors=True)
        raise


def stop_postgres(server: PostgresServer, *, remove: bool = True) -> None:
    """Stop by PID: ``pg_ctl stop -m fast``; SIGKILL the postmaster if it is still alive."""
    try:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            _run(
                [
                    *_as_server_user(),
                    str(server.bin_dir / "pg_ctl"),
                    "-D",
                    str(server.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(_STOP_TIMEOUT_S),
                    "stop",
                ],
                timeout=_STOP_TIMEOUT_S + 10,
                log=server.base_dir / "server.log",
            )
        deadline = time.monotonic() + 5
        while _pid_alive(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(server.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGKILL)
    finally:
        if remove:
            shutil.rmtree(server.base_dir, ignore_errors=True)


def restart_postgres(server: PostgresServer) -> None:
    """Start a server stopped with ``stop_postgres(..., remove=False)`` on its old port."""
    server.pid = _pg_ctl_start(
        server.bin_dir,
        server.data_dir,
        server.socket_dir,
        server.port,
        server.base_dir / "server.log",
    )


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A private server for one test; stopped and removed on exit."""
    server = start_postgres()
    try:
        yield server
    finally:
        stop_postgres(server)


def _admin_execute(server: PostgresServer, statement: sql.Composed) -> None:
    """Run one statement in the server's ``postgres`` database, outside a transaction."""
    try:
        import psycopg
    except ImportError:
        require_peer(False, "the psycopg 3 driver (pip install 'psycopg[binary]')")
        raise
    with psycopg.connect(server.conninfo(), autocommit=True, connect_timeout=10) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    return postgres_server.url()


@pytest.fixture
def postgres_db_url(postgres_server: PostgresServer) -> Iterator[str]:
    from psycopg import sql

    name = f"citadel_test_{next(_database_counter)}_{uuid.uuid4().hex[:8]}"
    _admin_execute(postgres_server, sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield postgres_server.url(name)
    finally:
        _admin_execute(
            postgres_server,
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        )
