"""Dask steps on the SLURM test cluster get their clusters as the profile says (workers as jobs, or inside the
step's allocation). That every shipped workflow on slurm-local agrees with the local site through both engines is
the portability matrix's check (`portaflow matrix --must-run slurm-local`, run by .ci/run): it runs once, there."""

from __future__ import annotations

import json
import subprocess

import pytest

from testlib import ROOT, run_portaflow

DATA = ROOT / "tests" / "data" / "workflows"


def queue() -> list[str]:
    return subprocess.run(["squeue", "--noheader", "--format=%i %j"], capture_output=True, text=True).stdout.splitlines()


@pytest.mark.xdist_group("slurm-dask-workers")  # the queue check sees every run's worker jobs: not two at once
@pytest.mark.parametrize("mode", ["jobs", "in_allocation"])
def test_dask_cpu_and_gpu_workers_on_slurm(slurm_cluster, tmp_path, mode):
    result = run_portaflow("run", str(DATA / "dask_gpu_survey.yaml"), "--site", "slurm-local", "--workdir", str(tmp_path),
                           "--site-set", f"dask.mode={mode}")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["workers"] == {"cpu": 1, "gpu": 1}
    assert report["gpu_tasks"] == 20 and report["gpu_tasks_on_gpu_workers"] is True
    assert not [line for line in queue() if "portaflow-dask" in line], "Dask worker jobs outlived the step"
    run_id = json.loads((tmp_path / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())["run_id"]
    listing = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True).stdout.splitlines()
    workers = [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in listing
               if f"Comment=portaflow:{run_id}" in line and "JobName=portaflow-dask-" in line]
    if mode == "jobs":  # one worker job of each kind, sized by the profile, on its own partition
        kinds = {w["JobName"]: w for w in workers}
        assert set(kinds) == {"portaflow-dask-cpu", "portaflow-dask-gpu"}, workers
        assert kinds["portaflow-dask-gpu"]["Partition"] == "gpu" and kinds["portaflow-dask-gpu"]["TresPerNode"] == "gres:gpu:1"
        assert kinds["portaflow-dask-cpu"]["Partition"] == "cpu" and "gpu" not in kinds["portaflow-dask-cpu"].get("TresPerNode", "")
    else:  # workers inside the step's own job: no worker jobs at all
        assert workers == []
