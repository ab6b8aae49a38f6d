"""A SLURM run's RO-Crate (issue 19): wordfreq (small) on the test cluster's `cpu` partition with both engines; the
crate passes roc-validator (Provenance Run Crate, REQUIRED) and each task's action names the SLURM job it ran in
(Snakemake: one job a task; Parsl: the job of the block that ran it), one the manifest lists and SLURM knows."""

from __future__ import annotations

import json

import pytest

import cratecheck


@pytest.mark.xdist_group("slurm-wordfreq")  # the runs are shared with tests/slurm/test_report_slurm.py
@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_slurm_run_crate_validates_and_names_each_task_s_job(slurm_cluster, wordfreq_on_slurm, engine):
    run_dir = (wordfreq_on_slurm(engine) / ".portaflow" / "runs" / "latest").resolve()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert cratecheck.structural_problems(run_dir) == []
    passed, issues = cratecheck.validate(run_dir)
    assert passed, issues
    graph = {e["@id"]: e for e in json.loads((run_dir / cratecheck.CRATE_FILE).read_text())["@graph"]}
    actions = [e for e in graph.values() if e["@type"] == "CreateAction" and e["@id"].startswith("#task/")]
    assert len(actions) == len(manifest["tasks"]) == 5
    jobs = {a["identifier"].removeprefix("scheduler job ") for a in actions}
    assert jobs <= set(manifest["scheduler_jobs"]) and all(a["identifier"].startswith("scheduler job ") for a in actions), actions
    if engine == "snakemake":
        assert len(jobs) == 5  # one job a task
    for job in jobs:
        assert slurm_cluster.show_job(job)["Partition"] == "cpu"
    assert all("startTime" in a and "endTime" in a for a in actions)
