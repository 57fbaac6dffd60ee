"""procfs readers: start time, status and executable, against real and crafted entries."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from node_agent.attestation import AttestationError, PeerGoneError, ProcessStatus, ProcFs

PID = 4242


def fake_proc(tmp_path: Path, *, stat: str | None = None, status: str | None = None) -> ProcFs:
    entry = tmp_path / str(PID)
    entry.mkdir()
    if stat is not None:
        (entry / "stat").write_text(stat)
    if status is not None:
        (entry / "status").write_text(status)
    return ProcFs(tmp_path)


def _stat(comm: str, start: str = "987654") -> str:
    fields = ["S"] + ["0"] * 18 + [start] + ["0"] * 30  # field 22 is the 20th after comm
    return f"{PID} ({comm}) " + " ".join(fields) + "\n"


def test_start_time_of_this_process_matches_stat_field_22() -> None:
    text = Path("/proc/self/stat").read_text()
    expected = int(text[text.rfind(")") + 2 :].split()[19])
    assert ProcFs().start_time(os.getpid()) == expected


@pytest.mark.parametrize(
    "comm", ["python", "a b", "x) S 1 (y", "))"], ids=["plain", "space", "fake-fields", "parens"]
)
def test_start_time_survives_hostile_command_names(tmp_path: Path, comm: str) -> None:
    assert fake_proc(tmp_path, stat=_stat(comm)).start_time(PID) == 987654


@pytest.mark.parametrize(
    "stat", ["garbage", f"{PID} (x) S 1 2", _stat("x", start="-5")], ids=["no-comm", "short", "neg"]
)
def test_malformed_stat_is_an_attestation_error(tmp_path: Path, stat: str) -> None:
    with pytest.raises(AttestationError, match="stat of process 4242 is malformed"):
        fake_proc(tmp_path, stat=stat).start_time(PID)


def test_vanished_process_is_peer_gone(tmp_path: Path) -> None:
    procfs = ProcFs(tmp_path)
    with pytest.raises(PeerGoneError, match="process 4242 is gone"):
        procfs.start_time(PID)
    with pytest.raises(PeerGoneError):
        procfs.exe_path(PID)
    with pytest.raises(PeerGoneError):
        procfs.open_exe(PID)


def test_status_gives_effective_ids_and_supplementary_groups(tmp_path: Path) -> None:
    status = "Name:\tx\nUid:\t1 1000 1000 1000\nGid:\t2 1001 1001 1001\nGroups:\t27 2000 \n"
    assert fake_proc(tmp_path, status=status).status(PID) == ProcessStatus(
        euid=1000, egid=1001, supplementary_gids=(27, 2000)
    )


def test_status_without_groups_has_none(tmp_path: Path) -> None:
    status = "Uid:\t5 5 5 5\nGid:\t6 6 6 6\nGroups:\t\n"
    assert fake_proc(tmp_path, status=status).status(PID).supplementary_gids == ()


@pytest.mark.parametrize(
    "status",
    ["Name:\tx\n", "Uid:\t1\nGid:\t2 2\n", "Uid:\ta b\nGid:\t1 1\n"],
    ids=["no-ids", "short-uid", "non-numeric"],
)
def test_malformed_status_is_an_attestation_error(tmp_path: Path, status: str) -> None:
    with pytest.raises(AttestationError, match="status of process 4242 is malformed"):
        fake_proc(tmp_path, status=status).status(PID)


def test_exe_path_of_this_process_is_the_running_interpreter() -> None:
    assert ProcFs().exe_path(os.getpid()) == os.path.realpath(sys.executable)


def test_pid_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        ProcFs().start_time(0)
