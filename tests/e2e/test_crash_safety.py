"""Finished work survives an interrupt (SIGINT, SIGTERM, SIGHUP) and a killed driver (SIGKILL), on both engines.

A fast step, then a slow one: the run is stopped while the slow step runs. The fast step's output must be kept
(same inode, same mtime), recorded, and not recomputed by the rerun; the slow step's partial output goes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testlib import ROOT, run_portaflow

WORKFLOW = ROOT / "tests" / "data" / "workflows" / "fast_then_slow.yaml"


def start(engine: str, workdir: Path, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "portaflow", "run", str(WORKFLOW), "--engine", engine, "--workdir", str(workdir)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until_fast_recorded_and_slow_runs(proc: subprocess.Popen[str], workdir: Path) -> os.stat_result:
    """The slow step has started (so the fast one finished) and the driver has recorded the fast one."""
    deadline = time.time() + 120
    record = workdir / ".portaflow" / "state" / "fast.json"
    while not ((workdir / "slow.txt").exists() and record.exists()) and time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the run ended early ({proc.returncode}): {proc.communicate()}")
        time.sleep(0.2)
    assert (workdir / "slow.txt").exists(), "the slow step never started"
    assert record.exists(), "the fast step finished but was not recorded while the run went on"
    return os.stat(workdir / "fast.txt")


def manifest(workdir: Path) -> dict:
    return json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())


def rerun_runs_only_the_slow_step(engine: str, workdir: Path, fast_before: os.stat_result) -> subprocess.CompletedProcess:
    result = run_portaflow("run", str(WORKFLOW), "--engine", engine, "--workdir", str(workdir), "--param", "wait=0", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    tasks = manifest(workdir)["tasks"]
    assert tasks["fast"]["status"] == "up to date" and tasks["slow"]["status"] == "ran", tasks
    after = os.stat(workdir / "fast.txt")
    assert (after.st_ino, after.st_mtime_ns) == (fast_before.st_ino, fast_before.st_mtime_ns), "the fast step was recomputed"
    assert (workdir / "slow.txt").read_text() == "fast\npartial\ndone\n"
    return result


def processes_in(directory: Path) -> list[int]:
    """Processes (not this one) whose working directory is under `directory`: what a run started there."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if cwd == str(directory) or cwd.startswith(f"{directory}/"):
            found.append(int(entry.name))
    return found


def stop_processes_in(directory: Path) -> None:
    """Whatever a test left running there (a rerun stops what a killed driver left; this is for failed tests): SIGINT,
    then SIGKILL for whatever is left."""
    for pid in processes_in(directory):
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            pass
    deadline = time.time() + 60
    while processes_in(directory) and time.time() < deadline:
        time.sleep(0.5)
    for pid in processes_in(directory):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("engine, sig", [("parsl", signal.SIGTERM), ("parsl", signal.SIGHUP),
                                         ("snakemake", signal.SIGINT), ("snakemake", signal.SIGTERM)])
def test_an_interrupt_keeps_finished_tasks_and_removes_only_partial_outputs(tmp_path, engine, sig):
    workdir = tmp_path / "work"
    proc = start(engine, workdir, tmp_path)
    try:
        fast_before = wait_until_fast_recorded_and_slow_runs(proc, workdir)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        stop_processes_in(tmp_path)
    assert proc.returncode == 128 + sig, out + err  # 130 SIGINT, 143 SIGTERM, 129 SIGHUP, as shells report them
    assert "Traceback" not in err
    assert (workdir / "fast.txt").read_text() == "fast\n", "a finished step's output was removed by the interrupt"
    assert not (workdir / "slow.txt").exists(), "a partial output survived the interrupt"
    record = manifest(workdir)
    assert record["status"] == "interrupted"
    assert record["tasks"]["fast"]["status"] == "ran" and record["tasks"]["slow"]["status"] == "not run", record["tasks"]
    assert "fast.txt" in record["outputs"]
    assert "kept 1 finished task(s): fast" in err and "1 task(s) must rerun (partial outputs removed): slow" in err, err
    rerun_runs_only_the_slow_step(engine, workdir, fast_before)


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_after_kill_9_of_the_driver_the_rerun_stops_its_processes_and_recomputes_no_finished_task(tmp_path, engine):
    workdir = tmp_path / "work"
    proc = start(engine, workdir, tmp_path)
    try:
        fast_before = wait_until_fast_recorded_and_slow_runs(proc, workdir)
        run_id = os.readlink(workdir / ".portaflow" / "runs" / "latest")
        proc.kill()
        proc.wait(timeout=30)  # not communicate(): the orphans still hold its output pipes
        assert proc.returncode == -signal.SIGKILL
        left = processes_in(tmp_path)
        assert left, "the killed driver left nothing running (the test would prove nothing)"
        result = rerun_runs_only_the_slow_step(engine, workdir, fast_before)
        assert f"run {run_id} (killed) left " in result.stderr and f"process(es) of run {run_id}" in result.stderr, result.stderr
        assert processes_in(tmp_path) == [], "the killed run's processes still run after the rerun"
    finally:
        proc.kill()
        stop_processes_in(tmp_path)
        proc.communicate(timeout=30)


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_one_run_per_work_directory_and_a_killed_runs_lock_is_taken_over(tmp_path, engine):
    workdir = tmp_path / "work"
    proc = start(engine, workdir, tmp_path)
    try:
        wait_until_fast_recorded_and_slow_runs(proc, workdir)
        run_id = os.readlink(workdir / ".portaflow" / "runs" / "latest")
        runs_before = sorted(os.listdir(workdir / ".portaflow" / "runs"))
        state_before = {p.name: p.read_bytes() for p in (workdir / ".portaflow" / "state").iterdir()}
        began = time.monotonic()
        second = run_portaflow("run", str(WORKFLOW), "--engine", engine, "--workdir", str(workdir), "--param", "wait=0", timeout=120)
        assert second.returncode == 2, second.stdout + second.stderr
        assert time.monotonic() - began < 30, "the second run did not give up at once"
        assert f"is in use by run {run_id} (pid {proc.pid} on host {socket.gethostname()}" in second.stderr, second.stderr
        assert "Traceback" not in second.stderr
        assert sorted(os.listdir(workdir / ".portaflow" / "runs")) == runs_before, "the refused run made a run directory"
        assert {p.name: p.read_bytes() for p in (workdir / ".portaflow" / "state").iterdir()} == state_before
        assert (workdir / "slow.txt").exists(), "the refused run removed the running step's output"
        assert proc.poll() is None, "the first run stopped"
        proc.kill()
        proc.wait(timeout=30)
    finally:
        proc.kill()
        stop_processes_in(tmp_path)
        proc.communicate(timeout=30)
    third = run_portaflow("run", str(WORKFLOW), "--engine", engine, "--workdir", str(workdir), "--param", "wait=0", timeout=300)
    assert third.returncode == 0, third.stdout + third.stderr
    assert f"taking over the lock of run {run_id} (pid {proc.pid}" in third.stderr, third.stderr
