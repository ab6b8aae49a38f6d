"""Real podman: the containers a run's steps started are stopped when the run is killed with -9 (by the rerun) or
interrupted (by the run itself), found by the label `portaflow.run-id=<run id>` every container carries.

Why a test with a real container: a container runs under podman's monitor (conmon), outside the run's processes;
its first process (`bash -c '... sleep ...'`, PID 1 of its namespace) ignores SIGTERM. Without the label the rerun
stopped the `podman run` client and nothing else: the container went on and wrote the output the rerun wrote.
Each case takes about 20-40 s (the small base image, no build when it exists)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from portaflow.containers.running import LABEL

from faultinjection import kill_all, processes_of_run
from testlib import ROOT, run_portaflow

WORKFLOW = ROOT / "tests" / "data" / "workflows" / "container_then_sleep.yaml"

# Not with the images' tests (the group tests/conftest.py gives tests/containers/): these need only the base, and
# the worker that builds the cores' images is the suite's longest already.
pytestmark = pytest.mark.xdist_group("podman-leftovers")


def labelled(run_id: str) -> list[str]:
    out = subprocess.run(["podman", "ps", "--all", "--filter", f"label={LABEL}={run_id}", "--format", "{{.ID}} {{.Status}}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.split("\n")[:-1]


def start(workdir, image: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "portaflow", "run", str(WORKFLOW), "--site", "local-podman", "--engine", "snakemake",
                             "--site-set", f"container.images.hep={image}", "--workdir", str(workdir)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_container(proc: subprocess.Popen, workdir) -> tuple[str, list[str]]:
    """The run's id and its container once the slow step runs in it (bounded: 120 s)."""
    deadline = time.monotonic() + 120
    run_id = ""
    while time.monotonic() < deadline and proc.poll() is None:
        latest = workdir / ".portaflow" / "runs" / "latest"
        run_id = run_id or (os.readlink(latest) if latest.is_symlink() else "")
        if run_id and (workdir / "slow.txt").exists() and "partial" in (workdir / "slow.txt").read_text():
            found = labelled(run_id)
            if found:
                return run_id, found
        time.sleep(0.2)
    said = proc.stderr.read() if proc.poll() is not None else ""
    raise AssertionError(f"the slow step never ran in a labelled container (exit {proc.poll()}): {said}")


def test_kill_9_leaves_a_container_running_and_the_rerun_stops_it_before_it_runs_the_step(tmp_path, base_image):
    workdir = tmp_path / "work"
    proc = start(workdir, base_image)
    run_id = ""
    try:
        run_id, found = wait_for_container(proc, workdir)
        # every process of the run on this host, as a reboot of the login node's session or the OOM killer would:
        # Snakemake and the `podman run` client die; the container lives on under conmon
        kill_all(run_id, session=proc.pid)
        proc.kill()
        proc.wait(timeout=30)
        time.sleep(1)
        still = labelled(run_id)
        assert still and all(line.split()[1] == "Up" for line in still), f"the container did not outlive the run: {still}"
        result = run_portaflow("run", str(WORKFLOW), "--site", "local-podman", "--engine", "snakemake", "--site-set",
                               f"container.images.hep={base_image}", "--workdir", str(workdir), "--param", "wait=0", timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        said = f"run {run_id} (killed) left 1 podman container(s) (label {LABEL}={run_id}); stopping and removing them"
        assert said in result.stderr, result.stderr
        assert labelled(run_id) == []
        manifest = json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
        assert [c[:12] for c in manifest["previous_run"]["containers_stopped"]] == [line.split()[0][:12] for line in found]
        assert manifest["tasks"]["fast"]["status"] == "up to date" and manifest["tasks"]["slow"]["status"] == "ran"
        assert (workdir / "slow.txt").read_text() == "fast\npartial\ndone\n"
        assert processes_of_run(run_id) == []
    finally:
        _clean_up(proc, run_id)


def test_an_interrupted_run_stops_its_containers(tmp_path, base_image):
    """SIGTERM only: SIGINT and SIGHUP end a run through the same path (driver.py, the KeyboardInterrupt clean-up)."""
    sig = signal.SIGTERM
    workdir = tmp_path / "work"
    proc = start(workdir, base_image)
    run_id = ""
    try:
        run_id, _ = wait_for_container(proc, workdir)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 128 + sig, stderr
        assert labelled(run_id) == [], "a container of the interrupted run is left"
        assert not (workdir / "slow.txt").exists() and (workdir / "fast.txt").exists()
    finally:
        _clean_up(proc, run_id)


def _clean_up(proc: subprocess.Popen, run_id: str) -> None:
    """Whatever a test left (pass or fail): its driver, the run's processes and its labelled containers."""
    if proc.poll() is None:
        proc.kill()
    if run_id:
        kill_all(run_id)
        subprocess.run(["podman", "rm", "--force", *[line.split()[0] for line in labelled(run_id)]], capture_output=True)
