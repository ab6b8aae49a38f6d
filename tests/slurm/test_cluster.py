"""Tests of the local SLURM test cluster itself: they prove the test bed catches the mistakes portaflow could make.

A SLURM site that accepted every directive would let a wrong --partition, --time, --account, --gres or
--constraint pass unnoticed. These tests submit real jobs and check that the cluster (a) records exactly what was
asked for and (b) rejects or holds what a real site would. Expected values are written here from the
configuration documented in tests/slurm/README.md, not read back from the cluster.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # the fixtures' type only; tests get the object from the fixtures
    from tests.slurm.conftest import SlurmCluster

# The messages sbatch 22.05 prints on stderr (after "sbatch: error: ") for each rejected mistake.
TIME_LIMIT_INVALID = "Requested time limit is invalid (missing or exceeds some limit)"
INVALID_ACCOUNT = "Invalid account or account/partition combination specified"
INVALID_QOS = "Invalid qos specification"


def _mem_total_mib() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def test_partitions_and_node_are_configured(slurm_cluster: SlurmCluster) -> None:
    cpu = slurm_cluster.show("partition", "cpu")
    gpu = slurm_cluster.show("partition", "gpu")
    assert (cpu["MaxTime"], cpu["Default"]) == ("01:00:00", "YES")
    assert (gpu["MaxTime"], gpu["Default"]) == ("00:30:00", "NO")

    node = slurm_cluster.show("node", slurm_cluster.node)
    assert node["CPUTot"] == "8"  # more than the 2 real cores: SlurmdParameters=config_overrides
    assert node["Gres"] == "gpu:2"
    assert set(node["AvailableFeatures"].split(",")) == {"intel", "avx2"}
    assert 0.7 * _mem_total_mib() < int(node["RealMemory"]) < 0.85 * _mem_total_mib()
    # `multi` (the compute nodes in namespaces) exists only after `cluster.sh up --nodes N`.
    assert set(slurm_cluster.partitions) - {"multi", "spread"} == {"cpu", "gpu"}


def test_cpu_job_records_what_was_asked(slurm_jobs: SlurmCluster, tmp_path: Path) -> None:
    # 4 CPUs on a 2-core machine: only possible because the node claims 8.
    job = slurm_jobs.submit("--partition=cpu", "--cpus-per-task=4", "--mem=1G", "--time=00:05:00",
                            "--constraint=avx2", "--job-name=pf-cpu", cwd=tmp_path, wrap="true")
    record = slurm_jobs.wait_for_state(job, slurm_jobs.final_states, timeout=60)
    assert record["JobState"] == "COMPLETED", record
    assert record["Partition"] == "cpu"
    assert record["TimeLimit"] == "00:05:00"
    assert record["NumCPUs"] == "4"
    assert record["MinMemoryNode"] == "1G"
    assert "mem=1G" in record["TRES"].split(",")
    assert record["Features"] == "avx2"
    assert record["JobName"] == "pf-cpu"
    if slurm_jobs.accounting:
        assert (record["Account"], record["QOS"]) == ("portaflow-test", "normal")  # the defaults for root


def test_default_memory_is_per_cpu(slurm_jobs: SlurmCluster, tmp_path: Path) -> None:
    # DefMemPerCPU=500: a job that asks for no memory gets 500M per CPU, not the whole node.
    job = slurm_jobs.submit("--cpus-per-task=2", "--time=00:02:00", "--hold", cwd=tmp_path)
    record = slurm_jobs.show_job(job)
    assert record["MinMemoryCPU"] == "500M"
    assert record["Partition"] == "cpu"  # the default partition
    assert record["JobState"] == "PENDING" and record["Reason"] == "JobHeldUser"


def test_gpu_job_sees_two_fake_gpus(slurm_jobs: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "gpu.out"
    job = slurm_jobs.submit("--partition=gpu", "--gres=gpu:2", "--time=00:02:00", f"--output={out}",
                            wrap='echo "CVD=$CUDA_VISIBLE_DEVICES"')
    record = slurm_jobs.wait_for_state(job, slurm_jobs.final_states, timeout=60)
    assert record["JobState"] == "COMPLETED", record
    assert (record["Partition"], record["TimeLimit"]) == ("gpu", "00:02:00")
    assert record["TresPerNode"] == "gres:gpu:2"
    line = out.read_text().strip()
    assert line.startswith("CVD=")
    devices = line.removeprefix("CVD=").split(",")
    assert len(devices) == 2 and len(set(devices)) == 2, line
    if slurm_jobs.accounting:
        rows = slurm_jobs.sacct(job, "JobID,State,Partition,AllocTRES")
        assert len(rows) == 1, rows
        assert rows[0]["Partition"] == "gpu"
        assert "gres/gpu=2" in rows[0]["AllocTRES"].split(","), rows


@pytest.mark.parametrize(("args", "message"), [
    (["--partition=cpu", "--time=01:00:01"], TIME_LIMIT_INVALID),    # over cpu MaxTime (EnforcePartLimits=ALL)
    (["--partition=gpu", "--time=00:31:00"], TIME_LIMIT_INVALID),    # fine for cpu, over gpu's MaxTime
    (["--partition=nosuch"], "Invalid partition name specified"),
    (["--partition=gpu", "--gres=gpu:3"], "Requested node configuration is not available"),
    (["--constraint=amd"], "Invalid feature specification"),
    (["--cpus-per-task=9"], "More processors requested than permitted"),
    (["--mem=100G"], "Memory specification can not be satisfied"),
], ids=["cpu-maxtime", "gpu-maxtime", "partition", "gres", "constraint", "cpus", "memory"])
def test_impossible_requests_are_rejected(slurm_jobs: SlurmCluster, tmp_path: Path, args: list[str],
                                          message: str) -> None:
    proc = slurm_jobs.sbatch(*args, cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert proc.stdout.strip() == ""  # no job id
    assert message in proc.stderr, proc.stderr


@pytest.mark.parametrize(("partition", "max_time"), [("cpu", "01:00:00"), ("gpu", "00:30:00")])
def test_partition_max_time_is_inclusive(slurm_jobs: SlurmCluster, tmp_path: Path, partition: str,
                                         max_time: str) -> None:
    # The limit itself is accepted: the rejections above are about the limit, not about long jobs in general.
    job = slurm_jobs.submit(f"--partition={partition}", f"--time={max_time}", "--hold", cwd=tmp_path)
    record = slurm_jobs.show_job(job)
    assert (record["Partition"], record["TimeLimit"]) == (partition, max_time)


@pytest.mark.usefixtures("requires_accounting")
@pytest.mark.parametrize(("args", "message"), [
    (["--account=portaflow-nonexistent"], INVALID_ACCOUNT),
    (["--qos=nosuch"], INVALID_QOS),
    (["--account=other", "--qos=short"], INVALID_QOS),               # `other` may only use QOS normal
], ids=["account", "qos", "qos-not-allowed-for-account"])
def test_bad_account_or_qos_is_rejected(slurm_jobs: SlurmCluster, tmp_path: Path, args: list[str],
                                        message: str) -> None:
    proc = slurm_jobs.sbatch(*args, cwd=tmp_path)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert message in proc.stderr, proc.stderr


@pytest.mark.usefixtures("requires_accounting")
def test_explicit_account_and_qos_are_recorded(slurm_jobs: SlurmCluster, tmp_path: Path) -> None:
    # `other` is not root's default account: a dropped --account would show portaflow-test here.
    job = slurm_jobs.submit("--account=other", "--time=00:02:00", "--hold", cwd=tmp_path)
    assert slurm_jobs.show_job(job)["Account"] == "other"
    job = slurm_jobs.submit("--qos=short", "--time=00:10:00", "--hold", cwd=tmp_path)
    record = slurm_jobs.show_job(job)
    assert (record["Account"], record["QOS"], record["TimeLimit"]) == ("portaflow-test", "short", "00:10:00")


@pytest.mark.usefixtures("requires_accounting")
def test_job_over_qos_max_wall_is_accepted_but_never_starts(slurm_jobs: SlurmCluster, tmp_path: Path) -> None:
    # QOS short has MaxWall=00:10:00 and no DenyOnLimit flag: sbatch accepts the job, which then pends forever.
    job = slurm_jobs.submit("--qos=short", "--time=00:20:00", cwd=tmp_path)
    record = slurm_jobs.show_job(job)
    for _ in range(40):
        if record.get("Reason") == "QOSMaxWallDurationPerJobLimit":
            break
        time.sleep(0.5)
        record = slurm_jobs.show_job(job)
    assert (record["JobState"], record["Reason"]) == ("PENDING", "QOSMaxWallDurationPerJobLimit"), record


def test_sacct_fails_without_accounting(slurm_cluster: SlurmCluster) -> None:
    if slurm_cluster.accounting:
        pytest.skip("accounting is on (this test is for `up --no-accounting` or `accounting off`)")
    proc = subprocess.run(["sacct", "-X", "-n", "-P"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    if "accounting_storage/none" in slurm_cluster.accounting_detail:   # `up --no-accounting`
        assert "Slurm accounting storage is disabled" in proc.stderr
    else:                                                              # `accounting off`: slurmdbd stopped
        assert "Problem talking to the database: Connection refused" in proc.stderr


@pytest.mark.slow
def test_job_over_its_time_limit_ends_in_timeout(slurm_jobs: SlurmCluster, tmp_path: Path) -> None:
    # OverTimeLimit=0, KillWait=5: the job ends TIMEOUT 60-90 s after it starts (slurmctld checks limits every ~30 s).
    job = slurm_jobs.submit("--time=00:01:00", cwd=tmp_path, wrap="sleep 120")
    slurm_jobs.wait_for_state(job, {"RUNNING"}, timeout=30)
    record = slurm_jobs.wait_for_state(job, slurm_jobs.final_states, timeout=150)
    assert (record["JobState"], record["Reason"]) == ("TIMEOUT", "TimeLimit"), record
    if slurm_jobs.accounting:
        rows = slurm_jobs.sacct(job, "JobID,State")
        assert rows and rows[0]["State"] == "TIMEOUT", rows
