"""Fault injection on the SLURM test cluster (issue 14).

1. `kill -9` of the driver while a step runs as a SLURM job: the rerun finds the killed run's job by the run tag,
   cancels it and waits until SLURM no longer lists it *before* it submits anything (the old job's end time is not
   after any new job's submit time), says so (its output and its manifest's `previous_run`), recomputes no finished
   task, and succeeds. Both engines (Parsl's blocks carry the tag as their comment, the Snakemake plugin's jobs as
   their name prefix).
2. Every signal and every kill point of tests/faultinjection.py for each engine: one segment per engine that kills
   a run at start, mid-fan-out, during the Dask step and at the end, the signals seeded so that each engine meets
   SIGKILL, SIGTERM and SIGINT and the two engines never repeat a (signal, point) pair (8 of the 12;
   PORTAFLOW_FAULTS_FULL=1 runs all 12 on each engine). Scheduler jobs of a killed run left are counted by the
   adapter's own `jobs_of_run`. Figures are printed as a table. PORTAFLOW_FAULTS_SEED=N draws another design.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from portaflow.schedulers import scheduler_for
from portaflow.spec.loading import load_site

from faultinjection import check_segments, kill_all, processes_of_run, slurm_plans_for
from testlib import ROOT, run_portaflow

FAST_THEN_SLOW = ROOT / "tests" / "data" / "workflows" / "fast_then_slow.yaml"
SITE = "slurm-local"
ENGINES = ("parsl", "snakemake")


def slurm() -> object:
    return scheduler_for("slurm")(load_site(SITE, environ={}))


def job_times(job_id: str) -> dict[str, str]:
    """SubmitTime, StartTime, EndTime of a job as slurmctld still knows it (for MinJobAge after it ended)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30).stdout
    fields = dict(word.split("=", 1) for word in out.split() if "=" in word)
    return {k: fields.get(k, "") for k in ("SubmitTime", "StartTime", "EndTime", "JobState")}


@pytest.mark.parametrize("engine, what", [("parsl", "driver"), ("snakemake", "host")])
def test_kill_9_while_a_step_runs_as_a_slurm_job_cancels_it_before_the_rerun_submits(slurm_cluster, tmp_path, engine, what):
    """`what`: SIGKILL to the driver only, or to every process of the run on this host (as a login node's reboot or an
    OOM killer would). Why the second for Snakemake: a Snakemake process left alive is stopped by the rerun with
    SIGTERM, and cancels its own jobs first, so only a killed Snakemake leaves its jobs to the rerun's adapter."""
    workdir = tmp_path / "work"
    adapter = slurm()
    proc = subprocess.Popen([sys.executable, "-m", "portaflow", "run", str(FAST_THEN_SLOW), "--site", SITE, "--engine", engine,
                             "--workdir", str(workdir)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    run_id = ""
    try:
        deadline = time.monotonic() + 240
        old_jobs: list[str] = []
        while time.monotonic() < deadline and proc.poll() is None:
            latest = workdir / ".portaflow" / "runs" / "latest"
            run_id = run_id or (os.readlink(latest) if latest.is_symlink() else "")
            if run_id and (workdir / "slow.txt").exists() and (workdir / ".portaflow" / "state" / "fast.json").exists():
                old_jobs = adapter.jobs_of_run(run_id)
                if old_jobs:
                    break
            time.sleep(0.2)
        assert old_jobs, "the slow step never ran as a SLURM job of the run (the test would prove nothing)"
        if what == "host":  # the driver's session (started with start_new_session): not the job's own processes on this node
            kill_all(run_id, session=proc.pid)
        proc.kill()
        proc.wait(timeout=30)
        assert adapter.jobs_of_run(run_id), "the killed run's job ended by itself (the test would prove nothing)"
        result = run_portaflow("run", str(FAST_THEN_SLOW), "--site", SITE, "--engine", engine, "--workdir", str(workdir),
                               "--param", "wait=0", timeout=400)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"run {run_id} (killed) left" in result.stderr and "cancelling them before anything is submitted" in result.stderr, result.stderr
        manifest = json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
        previous = manifest["previous_run"]
        assert previous["run_id"] == run_id and set(old_jobs) <= set(previous["jobs_cancelled"]), previous
        assert adapter.jobs_of_run(run_id) == []
        assert manifest["tasks"]["fast"]["status"] == "up to date" and manifest["tasks"]["slow"]["status"] == "ran", manifest["tasks"]
        assert json.loads((workdir / ".portaflow" / "state" / "fast.json").read_text())["run"] == run_id, "the fast step was recomputed"
        assert (workdir / "slow.txt").read_text() == "fast\npartial\ndone\n"
        new_jobs = [j for j in manifest["scheduler_jobs"] if j not in old_jobs]
        assert new_jobs, manifest["scheduler_jobs"]
        for old in old_jobs:
            ended = job_times(old)
            assert ended["JobState"] in ("CANCELLED", ""), ended
            for new in new_jobs:
                submitted = job_times(new)["SubmitTime"]
                if ended["EndTime"] and submitted:  # ISO times compare as text; slurmctld forgets a job after MinJobAge
                    assert ended["EndTime"] <= submitted, f"old job {old} ended {ended['EndTime']}, new job {new} submitted {submitted}"
        killed = json.loads((workdir / ".portaflow" / "runs" / run_id / "manifest.json").read_text())
        assert killed["status"] == "killed" and killed["tasks"]["fast"]["status"] == "ran", killed["tasks"]
        assert killed["tasks"]["slow"]["status"] == "not run"
        assert processes_of_run(run_id) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        if run_id:
            kill_all(run_id)
            adapter.cancel_run(run_id, [])


PLANS, WHICH = slurm_plans_for(ENGINES)


@pytest.mark.parametrize("engine", ENGINES)
def test_every_signal_and_every_point_on_slurm_loses_no_finished_work(slurm_cluster, tmp_path, engine, fault_reference):
    check_segments(engine, SITE, tmp_path, PLANS[engine], fault_reference, WHICH, jobs_left=slurm().jobs_of_run, timeout=400)
