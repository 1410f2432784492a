"""The domain's snapshot made by a forked child (ledger.core._forked): the state as it was at the fork, whole,
however large; a child that fails or is killed is reported, never taken for a snapshot."""

from __future__ import annotations

import os
import signal
import time

import pytest

from ledger.core._forked import SnapshotFailed, fork_available, snapshot_in_child

pytestmark = pytest.mark.skipif(
    not fork_available() and os.environ.get("CI") != "true", reason="no fork on this platform"
)  # under CI a platform without fork fails these instead


def test_the_child_returns_the_state_as_it_was_at_the_fork_however_large() -> None:
    state = bytearray(os.urandom(1024)) * 6_000  # 6 MB: many times a pipe's buffer
    expected = bytes(state)
    result = snapshot_in_child(lambda: bytes(state))
    state[:] = b"changed after the fork"  # the parent goes on; the child's copy does not see it
    assert result() == expected


def test_a_snapshot_that_raises_in_the_child_is_reported(capfd: pytest.CaptureFixture[str]) -> None:
    def broken() -> bytes:
        raise ValueError("a bug in the domain's snapshot")

    result = snapshot_in_child(broken)
    with pytest.raises(SnapshotFailed, match="exited with 1"):
        result()
    assert "a bug in the domain's snapshot" in capfd.readouterr().err  # the child's traceback, on stderr


def test_a_child_killed_midway_is_reported_and_its_part_never_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    def slow() -> bytes:
        time.sleep(30)
        return b"never"

    read_pid: list[int] = []
    original_fork = os.fork

    def fork() -> int:
        pid = original_fork()
        if pid:
            read_pid.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    result = snapshot_in_child(slow)
    os.kill(read_pid[0], signal.SIGKILL)
    with pytest.raises(SnapshotFailed, match="killed by signal 9"):
        result()
