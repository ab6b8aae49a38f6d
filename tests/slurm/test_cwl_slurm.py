"""CWL import and export on the real SLURM test cluster: a CWL Workflow's steps become SLURM jobs on the partition
their requests fit (slurm-local's `cpu`: no step asks for a GPU), through both engines, and the output object equals
what plain `cwltool` gives on this machine; a portaflow workflow's CWL export runs there the same way, its outputs
equal to the native run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from testlib import ROOT, export_outputs_agree, run_portaflow

# The module-scoped fixtures (cwltool and native reference runs) run once per test process: one worker takes the module.
pytestmark = pytest.mark.xdist_group("cwl-slurm")

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


WORDFREQ = ROOT / "workflows" / "examples" / "wordfreq.yaml"
SMALL = ["--preset", "small"]


@pytest.fixture(scope="module")
def wordfreq_export(tmp_path_factory):
    """wordfreq (small) exported with `portaflow export cwl`, run natively by portaflow on the local site and under
    cwltool on this machine (both at once): what the export's runs on the cluster are compared with."""
    base = tmp_path_factory.mktemp("wordfreq-export")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    made = run_portaflow("export", "cwl", str(WORDFREQ), *SMALL, "-o", str(base / "cwl"))
    assert made.returncode == 0, made.stderr
    cwl = subprocess.Popen([sys.executable, "-m", "cwltool", "--quiet", "--no-container", "--preserve-environment", "PYTHONPATH",
                            "--outdir", str(base / "cwl-out"), str(base / "cwl" / "workflow.cwl"), str(base / "cwl" / "job.yml")],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=base)
    native = run_portaflow("-q", "run", str(WORDFREQ), *SMALL, "-w", str(base / "native"))
    out, err = cwl.communicate(timeout=300)
    assert native.returncode == 0, native.stdout + native.stderr
    assert cwl.returncode == 0, err[-3000:]
    return {"export": base / "cwl", "native": base / "native", "cwltool": json.loads(out)}


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_exported_workflow_runs_through_cwl_import_on_slurm(slurm_cluster, wordfreq_export, tmp_path, engine):
    """Issue 19, export end to end: wordfreq's CWL export, run through portaflow's CWL import as SLURM jobs on the cpu
    partition with each engine, gives outputs equal, under each output's comparator, to the native portaflow run's,
    and the same output object as cwltool's run of the export on this machine."""
    export = wordfreq_export["export"]
    result = run_portaflow("run", str(export / "workflow.cwl"), str(export / "job.yml"), "--site", "slurm-local", "--engine", engine,
                           "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    objects = json.loads((tmp_path / "output.json").read_text())
    assert export_outputs_agree(objects, wordfreq_export["native"], WORDFREQ, SMALL) == []
    assert comparable(objects) == comparable(wordfreq_export["cwltool"])
    jobs = json.loads((tmp_path / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())["scheduler_jobs"]
    assert jobs, "no SLURM job recorded"
    assert {slurm_cluster.show_job(j)["Partition"] for j in jobs} == {"cpu"}
