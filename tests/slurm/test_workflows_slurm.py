"""Every shipped workflow on the SLURM test cluster through both engines agrees with the local site;
Dask steps get their clusters as the profile says (workers as jobs, or inside the step's allocation)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from testlib import ROOT, WORKFLOWS, run_portaflow
from portaflow.compare import compare_workdirs
from portaflow.plan import make_plan
from portaflow.spec.loading import load_site, load_workflow

SMALL = {
    "hep/zmumu.yaml": ["files=2", "events_per_file=5000", "chunk_entries=4000"],
    "radio/imaging.yaml": ["nants=16", "ntimes=8", "nchan=2", "npix=128", "nsources=2", "niter=100"],
}
DATA = ROOT / "tests" / "data" / "workflows"


def params_args(params: list[str]) -> list[str]:
    return [a for p in params for a in ("--param", p)]


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory) -> dict[str, Path]:
    out = {}
    for name, params in SMALL.items():
        workdir = tmp_path_factory.mktemp(name.split("/")[0])
        result = run_portaflow("run", str(WORKFLOWS / name), "--workdir", str(workdir), *params_args(params))
        assert result.returncode == 0, result.stdout + result.stderr
        out[name] = workdir
    return out


def test_every_science_workflow_is_covered():
    shipped = {str(p.relative_to(WORKFLOWS)) for p in WORKFLOWS.glob("*/*.yaml") if "gpu" not in p.stem and p.parent.name != "examples"}
    assert shipped == set(SMALL), "a workflow was added without a SLURM check"


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_workflow_on_slurm_agrees_with_local(slurm_cluster, local_runs, tmp_path, name, engine):
    result = run_portaflow("run", str(WORKFLOWS / name), "--site", "slurm-local", "--engine", engine,
                           "--workdir", str(tmp_path), *params_args(SMALL[name]))
    assert result.returncode == 0, result.stdout + result.stderr
    plan = make_plan(load_workflow(WORKFLOWS / name).workflow, load_site("slurm-local", environ={}).site,
                     dict(p.split("=") for p in SMALL[name]))
    verdicts = compare_workdirs(plan, local_runs[name], tmp_path)
    assert all(v.same for _, v in verdicts), [(p, v.detail) for p, v in verdicts if not v.same]


def queue() -> list[str]:
    return subprocess.run(["squeue", "--noheader", "--format=%i %j"], capture_output=True, text=True).stdout.splitlines()


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
