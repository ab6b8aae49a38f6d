"""`portaflow matrix`: each cell's status, outputs compared across cells, reports in three formats."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from testlib import ROOT, WORKFLOWS, browser_render, distinct_colours, run_portaflow

ECHO = str(ROOT / "tests" / "data" / "workflows" / "site_echo.yaml")


def site_with(write, name: str, body: str) -> str:
    return str(write(f"{name}.yaml", f"name: {name}\nextends: {ROOT / 'tests/data/sites/local-fixed.yaml'}\n{body}"))


def test_cells_run_render_or_say_why_not(tmp_path):
    out = tmp_path / "m"
    result = run_portaflow("matrix", "--workflows", str(WORKFLOWS / "examples" / "wordfreq.yaml"),
                           "--workflows", str(WORKFLOWS / "hep" / "zmumu-gpu.yaml"),
                           "--sites", "local", "--sites", "example-lumi-g", "--sites", "example-egi-cloud-k8s",
                           "--engines", "parsl", "-o", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "matrix.json").read_text())
    cells = {(c["workflow"], c["site"]): c for c in report["cells"]}
    assert report["ok"] and len(cells) == 6

    ran = cells[("wordfreq", "local")]
    assert ran["status"] == "passed" and ran["tasks"] == 2 + 2 + 1  # the `small` preset: 2 shards
    manifest = json.loads((tmp_path / "m" / "cells" / "wordfreq--local--parsl" / "work" / ".portaflow" / "runs" / "latest"
                           / "manifest.json").read_text())
    assert ran["outputs"] == {p: o["sha256"] for p, o in manifest["outputs"].items()} and len(ran["outputs"]) == 5

    rendered = cells[("wordfreq", "example-lumi-g")]
    assert rendered["status"] == "rendered-only" and "example profile" in rendered["reason"]
    assert any(p.endswith(".sbatch") for p in rendered["rendered"])
    assert cells[("wordfreq", "example-egi-cloud-k8s")]["status"] == "rendered-only"
    assert cells[("hep-zmumu-gpu", "local")]["status"] == "unsupported"
    assert "partition local has no GPUs" in cells[("hep-zmumu-gpu", "local")]["reason"]
    assert cells[("hep-zmumu-gpu", "example-lumi-g")]["status"] == "rendered-only"

    markdown = (out / "matrix.md").read_text()
    assert markdown.startswith("Portability matrix: PASSED") and "| wordfreq | local | parsl | passed |" in markdown
    assert "| site | wordfreq | hep-zmumu-gpu |" in markdown and "| local | passed | unsupported |" in markdown
    assert "<table>" in (out / "matrix.html").read_text() and "rendered-only" in result.stdout

    # The page in a browser: the table, and the cell that ran linked to its run's report (written beside its log).
    assert ran["report"] == str(out / "cells" / "wordfreq--local--parsl" / "report.html") and Path(ran["report"]).is_file()
    dom, shot = browser_render(out / "matrix.html", tmp_path)
    assert dom.count("<tr") == 1 + 6 and re.findall(r'<a class="report" href="([^"]+)"', dom) == ["cells/wordfreq--local--parsl/report.html"]
    assert distinct_colours(shot) > 20


def test_disagreeing_outputs_fail_the_matrix_and_name_cells_and_files(tmp_path, write):
    one = site_with(write, "site-one", "environment: {env: {PORTAFLOW_TEST_VALUE: one}}\n")
    two = site_with(write, "site-two", "environment: {env: {PORTAFLOW_TEST_VALUE: two}}\n")
    same = site_with(write, "site-same", "environment: {env: {PORTAFLOW_TEST_VALUE: one}}\n")
    out = tmp_path / "m"
    # --jobs 3: the three runs overlap, and the report still lists the cells, and picks the reference, in order.
    result = run_portaflow("matrix", "--workflows", ECHO, "--sites", one, "--sites", same, "--sites", two,
                           "--engines", "parsl", "-o", str(out), "--jobs", "3")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads((out / "matrix.json").read_text())
    assert not report["ok"]
    assert [c["site"] for c in report["cells"]] == [one, same, two]
    status = {c["site"]: c["status"] for c in report["cells"]}
    assert status == {one: "passed", same: "passed", two: "failed"}
    [disagreement] = report["disagreements"]
    assert disagreement["reference"] == f"site-echo @ {one} / parsl" and disagreement["cell"] == f"site-echo @ {two} / parsl"
    assert list(disagreement["files"]) == ["value.txt"]
    assert "DISAGREEMENT site-echo" in result.stdout and "value.txt" in (out / "matrix.md").read_text()


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="sbatch is not installed (tests/slurm/cluster.sh up installs it)")
def test_rendered_job_scripts_are_parsed_by_sbatch(tmp_path, write):
    bad = write("bad-hpc.yaml", f"extends: {ROOT / 'site_profiles/example-hpc-mem-per-cpu.yaml'}\nname: bad-hpc\n"
                "extra_directives: ['--hint=nomultithread', '--bogus-option=1']\n")
    out = tmp_path / "m"
    result = run_portaflow("matrix", "--workflows", str(WORKFLOWS / "examples" / "wordfreq.yaml"),
                           "--sites", str(bad), "--sites", "example-hpc-mem-per-cpu", "--engines", "parsl", "-o", str(out))
    assert result.returncode == 1
    cells = {c["site"]: c for c in json.loads((out / "matrix.json").read_text())["cells"]}
    assert cells["example-hpc-mem-per-cpu"]["status"] == "rendered-only"
    assert cells[str(bad)]["status"] == "failed"
    assert "sbatch rejects its options: sbatch: unrecognized option '--bogus-option=1'" in cells[str(bad)]["reason"]


def test_must_run_fails_a_site_that_could_only_be_rendered(tmp_path):
    out = tmp_path / "m"
    result = run_portaflow("matrix", "--workflows", str(WORKFLOWS / "examples" / "wordfreq.yaml"), "--sites", "example-lumi-g",
                           "--engines", "snakemake", "--must-run", "example-lumi-g", "-o", str(out))
    assert result.returncode == 1
    [cell] = json.loads((out / "matrix.json").read_text())["cells"]
    assert cell["status"] == "failed" and cell["reason"].startswith("must run here (--must-run example-lumi-g) but: example profile")


def test_relative_output_directory_renders_cells_that_hand_it_to_other_tools(tmp_path):
    # the Snakemake htcondor capture runs Snakemake elsewhere with the rendered profile's path
    result = run_portaflow("matrix", "--workflows", str(WORKFLOWS / "examples" / "wordfreq.yaml"), "--sites", "example-cern-htcondor",
                           "--engines", "snakemake", "-o", "relative-out", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [cell] = json.loads((tmp_path / "relative-out" / "matrix.json").read_text())["cells"]
    assert cell["status"] == "rendered-only" and any(p.endswith(".sub") for p in cell["rendered"])
