"""Both engines on the real SLURM test cluster: same outputs as locally, resources as the profile says."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testlib import ROOT, WORKFLOWS, run_portaflow
from portaflow.compare import compare_workdirs
from portaflow.plan import make_plan
from portaflow.spec.loading import load_site, load_workflow

ENGINES = ["parsl", "snakemake"]
WORDFREQ = WORKFLOWS / "examples" / "wordfreq.yaml"
RESOURCES = ROOT / "tests" / "data" / "workflows" / "resources.yaml"


def manifest(workdir: Path) -> dict:
    return json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())


@pytest.fixture(scope="module")
def local_wordfreq(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("local")
    result = run_portaflow("run", str(WORDFREQ), "--workdir", str(workdir), "--param", "shards=2")
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir


@pytest.mark.parametrize("engine", ENGINES)
def test_wordfreq_on_slurm_agrees_with_local(slurm_cluster, local_wordfreq, tmp_path, engine):
    result = run_portaflow("run", str(WORDFREQ), "--site", "slurm-local", "--engine", engine,
                           "--workdir", str(tmp_path), "--param", "shards=2")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = make_plan(load_workflow(WORDFREQ).workflow, load_site("slurm-local", environ={}).site, {"shards": 2})
    verdicts = compare_workdirs(plan, local_wordfreq, tmp_path)
    assert all(v.same for _, v in verdicts), [(p, v.detail) for p, v in verdicts if not v.same]
    jobs = manifest(tmp_path)["scheduler_jobs"]
    assert jobs, "no SLURM job recorded"
    for job in jobs:
        record = slurm_cluster.show_job(job)
        assert (record["Account"], record["QOS"], record["Partition"]) == ("portaflow-test", "normal", "cpu"), record
        assert record["JobState"] in ("COMPLETED", "CANCELLED", "TIMEOUT") or engine == "parsl", record


@pytest.mark.parametrize("engine", ENGINES)
def test_resources_reach_slurm_as_the_profile_says(slurm_cluster, slurm_accounting, tmp_path, engine):
    result = run_portaflow("run", str(RESOURCES), "--site", "slurm-local", "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    records = [slurm_cluster.show_job(j) for j in manifest(tmp_path)["scheduler_jobs"]]
    gpu_jobs = [r for r in records if "gpu" in r.get("TresPerNode", "")]
    cpu_jobs = [r for r in records if "gpu" not in r.get("TresPerNode", "")]
    assert len(gpu_jobs) == 1 and len(cpu_jobs) == 1, records
    gpu, cpu = gpu_jobs[0], cpu_jobs[0]
    # train: 4 cores, 6 GiB, 25 min, 2 GPUs -> the gpu partition, GPUs with the profile's --gres syntax.
    assert (gpu["Partition"], gpu["TimeLimit"], gpu["NumCPUs"], gpu["MinMemoryNode"]) == ("gpu", "00:25:00", "4", "6G"), gpu
    assert gpu["TresPerNode"] == "gres:gpu:2" and (gpu["Account"], gpu["QOS"]) == ("portaflow-test", "normal")
    # prepare: 2 cores, 4 GiB, 20 min -> the cpu partition (the smallest that fits).
    assert (cpu["Partition"], cpu["TimeLimit"], cpu["NumCPUs"], cpu["MinMemoryNode"]) == ("cpu", "00:20:00", "2", "4G"), cpu
    # Inside the job the step sees exactly the GPUs it asked for.
    assert (tmp_path / "gpu.txt").read_text().strip().split(",") == ["0", "1"]
    if slurm_accounting:
        [row] = slurm_cluster.sacct(gpu["JobId"], "JobID,AllocTRES")
        assert "gres/gpu=2" in row["AllocTRES"], row


@pytest.mark.parametrize("engine", ENGINES)
def test_failure_on_slurm_reports_timeout_and_job(slurm_cluster, tmp_path, engine):
    result = run_portaflow("run", str(ROOT / "tests" / "data" / "workflows" / "overrun.yaml"), "--site", "slurm-local",
                           "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TIMEOUT: ran past its walltime of 00:00:03" in result.stdout
    assert not (tmp_path / "long.txt").exists()
    jobs = manifest(tmp_path)["scheduler_jobs"]
    if engine == "snakemake":  # the failed step's own SLURM job is named
        assert f"failed long job {jobs[0]} exit code 124" in result.stdout, result.stdout
