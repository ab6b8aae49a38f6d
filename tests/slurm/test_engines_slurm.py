"""Both engines on the real SLURM test cluster: resources as the profile says, failures reported with their job.

That each shipped workflow's outputs on slurm-local agree with the local site's, through both engines, is the
portability matrix's check (`portaflow matrix --must-run slurm-local`, run by .ci/run): it runs once, there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from testlib import ROOT, run_portaflow

ENGINES = ["parsl", "snakemake"]
RESOURCES = ROOT / "tests" / "data" / "workflows" / "resources.yaml"
FAILING_IN_JOB = ROOT / "tests" / "data" / "workflows" / "failing_in_job.yaml"
VARIANT_SITE = ROOT / "tests" / "data" / "sites" / "slurm-local-variant.yaml"


def manifest(workdir: Path) -> dict:
    return json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())


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
    # The job the step ran in is named: its own job (Snakemake), the block's job (Parsl; one task, one block).
    assert f"failed long job {jobs[0]} exit code 124" in result.stdout, result.stdout


def scontrol_mib(value: str) -> float:
    """A memory size as scontrol prints it (500M, 1.50G, 6G) in MiB."""
    number, unit = re.fullmatch(r"([\d.]+)([KMGT]?)", value).groups()
    return float(number) * {"K": 1 / 1024, "M": 1, "": 1, "G": 1024, "T": 1024 ** 2}[unit]


@pytest.mark.parametrize("engine", ENGINES)
def test_constraint_mem_per_cpu_and_gpus_reach_slurm(slurm_cluster, tmp_path, engine):
    """The variant profile's other rules (tests/data/sites/slurm-local-variant.yaml), read back from the jobs
    each engine really submitted: --constraint (site-wide, and AND-ed with the gpu partition's), memory per CPU,
    and GPUs as --gpus=N (a per-job GPU count, not the per-node GRES slurm-local asks for)."""
    result = run_portaflow("run", str(RESOURCES), "--site", str(VARIANT_SITE), "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    records = [slurm_cluster.show_job(j) for j in manifest(tmp_path)["scheduler_jobs"]]
    gpu_jobs = [r for r in records if r["Partition"] == "gpu"]
    cpu_jobs = [r for r in records if r["Partition"] == "cpu"]
    assert len(gpu_jobs) == 1 and len(cpu_jobs) == 1, records
    gpu, cpu = gpu_jobs[0], cpu_jobs[0]
    # prepare: 2 cores, 4 GiB -> 2048 MiB per CPU; train: 4 cores, 6 GiB -> 1536 MiB per CPU. No per-node value.
    assert (cpu["Features"], cpu["NumCPUs"], scontrol_mib(cpu["MinMemoryCPU"])) == ("avx2", "2", 2048), cpu
    assert (gpu["Features"], gpu["NumCPUs"], scontrol_mib(gpu["MinMemoryCPU"])) == ("avx2&intel", "4", 1536), gpu
    assert "MinMemoryNode" not in cpu and "MinMemoryNode" not in gpu
    assert gpu.get("TresPerJob") == "gres:gpu:2" and "TresPerNode" not in gpu, gpu
    assert "gres/gpu=2" in gpu["TRES"], gpu
    assert (tmp_path / "gpu.txt").read_text().strip().split(",") == ["0", "1"]


@pytest.mark.parametrize("engine", ENGINES)
def test_failed_step_names_its_job_exit_code_and_stderr(slurm_cluster, tmp_path, engine):
    """A failed step's report names the SLURM job it ran in (for Parsl: its block's job, found through the
    block id the worker noted and Parsl's block -> job map), its exit code, and the tail of its stderr.

    The step prints $SLURM_JOB_ID itself, so the named job is checked against where it really ran; three
    other tasks run beside it, so a Parsl run has several blocks a wrong mapping could pick."""
    result = run_portaflow("run", str(FAILING_IN_JOB), "--site", "slurm-local", "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    ran_in = re.search(r"running in job (\d+)", (tmp_path / ".portaflow" / "runs" / "latest" / "logs" / "broken.log").read_text())
    assert ran_in, "the step did not run in a SLURM job"
    job = ran_in.group(1)
    assert job in manifest(tmp_path)["scheduler_jobs"]
    assert f"failed broken job {job} exit code 7: the command failed" in result.stdout, result.stdout
    assert "something went wrong" in result.stdout  # the tail of the step's stderr
    assert not (tmp_path / "broken.txt").exists()
    if engine == "parsl":
        block = re.search(rf"failed broken job {job} .*in Parsl block (\d+) of executor (\w+)", result.stdout)
        assert block, result.stdout
        name = slurm_cluster.show_job(job)["JobName"]  # Parsl names a block's job parsl.<executor>.block-<id>.<time>
        assert name.startswith(f"parsl.{block.group(2)}.block-{block.group(1)}."), name
        assert len(manifest(tmp_path)["scheduler_jobs"]) > 1, "one block only: the test could not catch a wrong one"
