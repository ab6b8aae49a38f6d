"""CWL import end to end on the local site: each CWL document through portaflow with both engines gives the output
object plain `cwltool` gives for the same document and job (locations aside: portaflow's are in its work directory).

features.cwl holds in one Workflow what cwltool does inside portaflow's tasks (scatter dotproduct, flat and nested
crossproduct, a subworkflow, `when` with pickValue, valueFrom, JavaScript expressions), so one run per engine covers
them (the dotproduct and flat_crossproduct over the job's lists as one task per element, gathered); wc-tool.cwl goes
through `portaflow-cwl-runner`, the cwl-runner entry point cwltest drives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testlib import ROOT, run_portaflow

# The module-scoped fixtures render or run once per test process: one xdist worker takes the whole module.
pytestmark = pytest.mark.xdist_group("cwl-import")

CWL = ROOT / "tests" / "data" / "cwl"
CWLTOOL = Path(sys.executable).parent / "cwltool"
PLACE = ("location", "path")


def comparable(value: Any) -> Any:
    """An output object without where its files are (location, path); checksums, sizes and names stay."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k not in PLACE}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def cwltool_reference(document: Path, job: Path, outdir: Path) -> dict[str, Any]:
    proc = subprocess.run([str(CWLTOOL), "--quiet", "--outdir", str(outdir), str(document), str(job)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def features_reference(tmp_path_factory) -> dict[str, Any]:
    return cwltool_reference(CWL / "features.cwl", CWL / "features-job.yml", tmp_path_factory.mktemp("cwltool"))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["parsl", "snakemake"])
def test_features_through_portaflow_equal_cwltool(features_reference, tmp_path, engine):
    result = run_portaflow("run", str(CWL / "features.cwl"), str(CWL / "features-job.yml"), "--engine", engine, "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    out = json.loads((tmp_path / "output.json").read_text())
    assert comparable(out) == comparable(features_reference)
    assert out["verdict"] == "few" and out["nested"] == [["alpha-1", "alpha-2"], ["beta-1", "beta-2"]]
    for entry in [*out["files"], out["shouted"]]:  # the files are in the run's output directory
        assert Path(entry["path"]).parent == tmp_path / "output" and Path(entry["path"]).is_file()
    manifest = json.loads((tmp_path / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
    assert {t for t, info in manifest["tasks"].items() if info["status"] == "ran"} == set(manifest["tasks"])
    # 7 steps and the collector; the dotproduct (2) and the flat_crossproduct (2 x 2) over the job's lists are one task
    # per element and one that gathers them, equal to cwltool's scatter above
    assert len(manifest["tasks"]) == 8 + 2 + 4
    assert len([t for t in manifest["tasks"] if t.startswith("label_flat_element")]) == 4
    if engine == "parsl":  # staleness is portaflow's as for its own workflows: nothing changed, nothing reruns
        again = run_portaflow("run", str(CWL / "features.cwl"), str(CWL / "features-job.yml"), "--workdir", str(tmp_path))
        assert again.returncode == 0 and "nothing to do" in again.stdout, again.stdout + again.stderr


@pytest.mark.slow
def test_cwl_runner_prints_the_output_object_and_moves_files_to_outdir(tmp_path):
    reference = cwltool_reference(CWL / "wc-tool.cwl", CWL / "wc-job.yml", tmp_path / "reference")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "portaflow.cwl_runner", "--outdir", str(tmp_path / "out"), "--quiet",
                           str(CWL / "wc-tool.cwl"), str(CWL / "wc-job.yml")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)  # stdout holds the output object and nothing else
    assert comparable(out) == comparable(reference) and out["lines"] == 3
    assert out["count"]["path"] == str(tmp_path / "out" / "count.txt") and (tmp_path / "out" / "count.txt").is_file()
