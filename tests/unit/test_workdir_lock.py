"""One run per work directory: the lock names its holder, refuses a second run, and is taken over once its holder is gone."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from portaflow.engines.state import LOCK_FILE, WorkdirBusy, WorkdirLock

HOLD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from portaflow.engines.state import WorkdirLock
    lock = WorkdirLock(Path(sys.argv[1]))
    lock.acquire("run-held")
    print("held", flush=True)
    time.sleep(60)
""")


def test_a_second_run_is_refused_with_the_holder_and_a_free_lock_is_taken(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = (tmp_path / LOCK_FILE).read_text()
        with pytest.raises(WorkdirBusy) as info:
            WorkdirLock(tmp_path).acquire("run-second")
        message = str(info.value)
        assert "run-held" in message and f"pid {holder.pid}" in message and socket.gethostname() in message
        assert info.value.exit_code == 2
        assert (tmp_path / LOCK_FILE).read_text() == before, "the refused run changed the lock"
    finally:
        holder.kill()
        holder.wait()
    lock = WorkdirLock(tmp_path)
    lock.acquire("run-third")  # the kernel released the killed holder's flock
    assert json.loads((tmp_path / LOCK_FILE).read_text())["run_id"] == "run-third"
    lock.release()
    assert (tmp_path / LOCK_FILE).read_text() == ""


def test_a_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path, caplog):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
    (tmp_path / LOCK_FILE).parent.mkdir(parents=True)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"run_id": "run-killed", "pid": int(dead), "host": socket.gethostname(),
                                                  "started": "2026-01-01T00:00:00"}))
    lock = WorkdirLock(tmp_path)
    with caplog.at_level(logging.WARNING, logger="portaflow.engines.state"):
        lock.acquire("run-new")
    lock.release()
    assert "taking over the lock of run run-killed" in caplog.text and f"pid {dead}" in caplog.text
    assert "no longer running" in caplog.text


def test_a_clean_end_leaves_nothing_to_take_over(tmp_path, caplog):
    first = WorkdirLock(tmp_path)
    first.acquire("run-1")
    first.release()
    with caplog.at_level(logging.WARNING, logger="portaflow.engines.state"):
        second = WorkdirLock(tmp_path)
        second.acquire("run-2")
        second.release()
    assert "taking over" not in caplog.text


def _left_by(tmp_path, host: str, pid: int) -> str:
    (tmp_path / LOCK_FILE).parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"run_id": "run-elsewhere", "pid": pid, "host": host, "started": "2026-01-01T00:00:00"})
    (tmp_path / LOCK_FILE).write_text(text)
    return text


def test_a_lock_left_by_another_host_stops_the_run_until_unlocked(tmp_path):
    """On a shared filesystem whose locks stay per host, a free flock says nothing about a run on another login node:
    the run stops with exit 2 and how to check and unlock; `unlock` clears it, then a run takes the lock."""
    text = _left_by(tmp_path, "login-other.example", 4242)
    with pytest.raises(WorkdirBusy) as info:
        WorkdirLock(tmp_path).acquire("run-here")
    message = str(info.value)
    assert "run-elsewhere" in message and "pid 4242 on host login-other.example" in message and "portaflow unlock" in message
    assert info.value.exit_code == 2 and (tmp_path / LOCK_FILE).read_text() == text, "the refused run changed the lock"
    assert WorkdirLock(tmp_path).unlock()["run_id"] == "run-elsewhere"
    assert WorkdirLock(tmp_path).unlock() == {}  # nothing left
    lock = WorkdirLock(tmp_path)
    lock.acquire("run-here")
    lock.release()


def test_unlock_refuses_a_held_lock_and_a_holder_still_running_here(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(WorkdirBusy, match="right now: not unlocked"):
            WorkdirLock(tmp_path).unlock()
    finally:
        holder.kill()
        holder.wait()
    _left_by(tmp_path, socket.gethostname(), os.getpid())  # a holder on this host that still runs (this test)
    with pytest.raises(WorkdirBusy, match="still runs on this host"):
        WorkdirLock(tmp_path).unlock()


def test_portaflow_unlock_command(tmp_path):
    _left_by(tmp_path, "login-other.example", 4242)
    result = subprocess.run([sys.executable, "-m", "portaflow", "unlock", "-w", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "cleared run run-elsewhere (pid 4242 on host login-other.example" in result.stdout
    assert (tmp_path / LOCK_FILE).read_text() == ""
    _left_by(tmp_path, "login-other.example", 4243)
    from testlib import WORKFLOWS

    result = subprocess.run([sys.executable, "-m", "portaflow", "run", str(WORKFLOWS / "examples" / "wordfreq.yaml"), "-w", str(tmp_path),
                             "--unlock"], capture_output=True, text=True)
    assert result.returncode == 0 and "cleared run run-elsewhere (pid 4243" in result.stdout, result.stderr
    assert not (tmp_path / ".portaflow" / "runs").exists(), "--unlock ran something"
