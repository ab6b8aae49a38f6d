"""Dask steps on the local site: the cluster comes from the profile; GPU-tagged tasks go to GPU workers."""

from __future__ import annotations

import json

import pytest

from testlib import ROOT, run_portaflow

DATA = ROOT / "tests" / "data" / "workflows"


@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_dask_step_gets_requested_workers(tmp_path, engine):
    result = run_portaflow("run", str(DATA / "dask_survey.yaml"), "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["workers"] == {"cpu": 2, "gpu": 0}
    assert report["sum_of_squares"] == sum(i * i for i in range(20))


def test_gpu_tagged_tasks_run_only_on_gpu_workers(tmp_path):
    # The Dask resource tag is what is tested here; nothing computes on a GPU (none on this machine).
    result = run_portaflow("run", str(DATA / "dask_gpu_survey.yaml"), "--workdir", str(tmp_path),
                           "--site-set", "partitions.local.gpus_per_node=1")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["workers"] == {"cpu": 1, "gpu": 1}
    assert report["gpu_tasks"] == 20 and report["gpu_tasks_on_gpu_workers"] is True
