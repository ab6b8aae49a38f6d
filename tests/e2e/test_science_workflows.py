"""The science workflows run end to end on the local site through both engines, with agreeing outputs."""

from __future__ import annotations

import json

import pytest

from testlib import WORKFLOWS, run_portaflow
from portaflow.compare import compare_workdirs
from portaflow.plan import make_plan
from portaflow.spec.loading import load_site, load_workflow

CASES = {
    "hep": (WORKFLOWS / "hep" / "zmumu.yaml", ["files=2", "events_per_file=6000", "chunk_entries=4000"]),
    "radio": (WORKFLOWS / "radio" / "imaging.yaml", ["nants=24", "ntimes=12", "nchan=2", "npix=256", "nsources=3", "niter=300"]),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_workflow_agrees_across_engines(tmp_path, name):
    path, params = CASES[name]
    args = [a for p in params for a in ("--param", p)]
    workdirs = {}
    for engine in ("parsl", "snakemake"):
        workdirs[engine] = tmp_path / engine
        result = run_portaflow("run", str(path), "--engine", engine, "--workdir", str(workdirs[engine]), *args)
        assert result.returncode == 0, result.stdout + result.stderr
    plan = make_plan(load_workflow(path).workflow, load_site("local", environ={}).site, dict(p.split("=") for p in params))
    verdicts = compare_workdirs(plan, workdirs["parsl"], workdirs["snakemake"])
    assert verdicts and all(v.same for _, v in verdicts), [(p, v.detail) for p, v in verdicts if not v.same]


def test_hep_summary_is_physical(tmp_path):
    path, params = CASES["hep"]
    result = run_portaflow("run", str(path), "--workdir", str(tmp_path), *[a for p in params for a in ("--param", p)])
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "results" / "summary.json").read_text())
    assert summary["dimuon_peak_bin"][0] <= 91.1876 < summary["dimuon_peak_bin"][1] + 1.0
    assert (tmp_path / "results" / "zpeak.png").stat().st_size > 10_000


def test_radio_summary_finds_the_simulated_sources(tmp_path):
    path, params = CASES["radio"]
    result = run_portaflow("run", str(path), "--workdir", str(tmp_path), *[a for p in params for a in ("--param", p)])
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "images" / "summary.json").read_text())
    truth = json.loads((tmp_path / "data" / "sky.json").read_text())
    assert len(summary["truth"]) == len(truth["flux"]) == 3
    for match in summary["truth"]:  # every simulated source found, at its pixel, with its flux
        assert match["offset_pix"] <= 1.0 and abs(match["flux_ratio"] - 1) < 0.02
