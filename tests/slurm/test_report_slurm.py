"""`portaflow report` of a run on the SLURM test cluster (the cpu partition): each task's job, its CPU efficiency and
queue wait from sacct through the SLURM adapter, rendered in headless chromium."""

from __future__ import annotations

import json
import re

import pytest

from testlib import browser_render, colour_share, distinct_colours, run_portaflow

GREEN = (0x2E, 0x7D, 0x32)


@pytest.mark.xdist_group("slurm-wordfreq")  # the run is shared with tests/slurm/test_run_crate_slurm.py
def test_report_of_a_slurm_run_has_sacct_accounting(slurm_cluster, requires_accounting, wordfreq_on_slurm, tmp_path):
    """Snakemake on SLURM: one job per task, so each task's row is its own job's accounting."""
    workdir = wordfreq_on_slurm("snakemake")
    manifest = json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
    jobs = {task_id: task.get("job") for task_id, task in manifest["tasks"].items()}
    assert all(jobs.values()) and set(jobs.values()) <= set(manifest["scheduler_jobs"]), jobs
    out = tmp_path / "slurm-report.html"
    made = run_portaflow("report", "--workdir", str(workdir), "-o", str(out))
    assert made.returncode == 0, made.stdout + made.stderr
    page = out.read_text()
    assert f"slurm accounting for {len(jobs)} of {len(jobs)} job(s)" in page
    for task_id, job in jobs.items():
        row = re.search(rf'<tr id="task-{task_id}" .*?</tr>', page).group(0)
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        # task, state, tries, job, queue wait, run time, CPU eff., memory eff., measured by, message
        assert cells[3] == job and cells[8] == f"scheduler accounting, job {job}", cells
        assert re.fullmatch(r"\d+%", cells[6]) and re.fullmatch(r"\d+\.\d s", cells[4]), cells
    dom, shot = browser_render(out, tmp_path)
    assert 'data-report-ready="1"' in dom and len(re.findall(r'<g class="node"', dom)) == len(jobs)
    assert len(re.findall(r'class="running"', dom)) == len(jobs)
    assert re.search(r'class="starting"', dom)  # its job started (sacct), its step later: the job's start-up drawn apart
    assert distinct_colours(shot) > 50 and colour_share(shot, GREEN) > 0.005
