"""CWL import on the real SLURM test cluster: a CWL Workflow's steps become SLURM jobs on the partition their
requests fit (slurm-local's `cpu`: no step asks for a GPU), through both engines, and the output object equals what
plain `cwltool` gives on this machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testlib import ROOT, run_portaflow

CWL = ROOT / "tests" / "data" / "cwl"
PLACE = ("location", "path")


def comparable(value):
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in PLACE}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    proc = subprocess.run([str(Path(sys.executable).parent / "cwltool"), "--quiet", "--outdir", str(tmp_path_factory.mktemp("ref")),
                           str(CWL / "pipeline.cwl"), str(CWL / "pipeline-job.yml")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_cwl_workflow_runs_as_slurm_jobs_on_the_cpu_partition(slurm_cluster, reference, tmp_path, engine):
    result = run_portaflow("run", str(CWL / "pipeline.cwl"), str(CWL / "pipeline-job.yml"), "--site", "slurm-local", "--engine", engine,
                           "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads((tmp_path / "output.json").read_text())
    assert comparable(out) == comparable(reference) and out["lines"] == 4
    jobs = json.loads((tmp_path / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())["scheduler_jobs"]
    assert jobs, "no SLURM job recorded"
    records = [slurm_cluster.show_job(j) for j in jobs]
    assert {r["Partition"] for r in records} == {"cpu"}, records
    assert all(r["Account"] == "portaflow-test" for r in records)
