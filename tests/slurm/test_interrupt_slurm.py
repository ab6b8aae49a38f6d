"""SIGTERM or Ctrl-C on `portaflow run` against SLURM: every job of the run is cancelled, the queue is
empty afterwards, and no partial output is left."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

from testlib import ROOT

SLOW = ROOT / "tests" / "data" / "workflows" / "slow.yaml"


@pytest.mark.parametrize("engine, sig", [("parsl", signal.SIGTERM), ("snakemake", signal.SIGTERM), ("snakemake", signal.SIGINT)])
def test_interrupt_cancels_every_job(slurm_cluster, tmp_path, engine, sig):
    proc = subprocess.Popen([sys.executable, "-m", "portaflow", "run", str(SLOW), "--site", "slurm-local", "--engine", engine,
                             "--workdir", str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    partial = tmp_path / "slow.txt"
    deadline = time.time() + 180
    while not partial.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert partial.exists(), "the step never started on SLURM"
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + sig, out + err  # 130 for SIGINT, 143 for SIGTERM
    manifest = json.loads((tmp_path / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    time.sleep(2)  # scancel is asynchronous: give slurmctld a moment
    queue = subprocess.run(["squeue", "--noheader", "--format=%i|%k|%T"], capture_output=True, text=True).stdout.splitlines()
    run_jobs = set(manifest["scheduler_jobs"])
    left = [line for line in queue if line.split("|")[0] in run_jobs or f"portaflow:{manifest['run_id']}" in line]
    assert not left, f"jobs of the run still queued or running: {left}"
    assert not partial.exists(), "a partial output survived"
