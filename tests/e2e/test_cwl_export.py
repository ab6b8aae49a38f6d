"""A workflow exported with `portaflow export cwl` runs under cwltool on this machine, and its outputs equal a portaflow
run's under each output's comparator (issue 19): wordfreq, both science workflows (small presets), and a workflow of
shell steps whose tasks read picked files (crossproduct, one element, a row) and values a shell must not run.

As a user runs it: the venv's bin first on PATH (cwltool keeps PATH without a container, so `python3 -m
portaflow.runtime.call` is portaflow's), `--no-container` (the steps' images are hints). Here PYTHONPATH also
reaches the steps (`--preserve-environment PYTHONPATH`), so that they run this checkout's portaflow. For each
workflow the portaflow run and the cwltool run go side by side (one module-scoped fixture per workflow); the science
workflows' portaflow runs are the session's shared host runs (`science_on_local`, tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cratecheck
from testlib import ROOT, SCIENCE_CASES, WORKFLOWS, export_outputs_agree, param_args

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("science-local")]  # shares science_on_local with the podman tests

SHELL_ONLY = """
name: cwlshell
parameters:
  evil: "$(touch pwned); echo 'a' \\"b\\" ${HOME} `id`"
  ratio: 2.0
  words: ["a b", "c'd"]
  n: 2
steps:
  gen:
    scatter: {i: {range: "{n}"}, tag: [x, "y z"]}
    command: printf '%s|' {evil} {ratio} {words} {i} {tag} > {outputs.out}
    outputs: {out: "gen/{i}_{tag}_{ratio}.txt"}
  pick:
    scatter: {tag: [x, "y z"]}
    command: cat {inputs.one} {inputs.row} > {outputs.o}; echo {tag} >> {outputs.o}
    inputs:
      one: "gen/1_x_2.0.txt"
      row: "gen/{i}_{tag}_2.0.txt"
    outputs: {o: "pick/{tag}.txt"}
  total:
    command: cat {inputs.rows} > {outputs.sum}
    inputs: {rows: "pick/{tag}.txt"}
    outputs: {sum: {path: results/sum.txt, compare: text}}
"""

CASES = {
    "wordfreq": (WORKFLOWS / "examples" / "wordfreq.yaml", ["--preset", "small"]),
    "hep": (SCIENCE_CASES["hep"][0], param_args(SCIENCE_CASES["hep"][1])),
    "radio": (SCIENCE_CASES["radio"][0], param_args(SCIENCE_CASES["radio"][1])),
}


IMPORT_ENGINES = ("parsl", "snakemake")
"""wordfreq's export also goes through portaflow's CWL import with each engine (the round trip: portaflow -> CWL ->
portaflow); the other cases through cwltool only (the import's machinery is the same for every document)."""


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def _both(workflow: Path, args: list[str], base: Path, portaflow_run: Path | None = None, imports: tuple[str, ...] = ()) -> dict:
    """Export, then run the export under cwltool and the workflow under portaflow at the same time (or compare with
    `portaflow_run`, a work directory where portaflow already ran the workflow with these arguments), and the export
    through portaflow's CWL import with each engine in `imports`."""
    export = base / "cwl"
    env = _env()
    made = subprocess.run([sys.executable, "-m", "portaflow", "export", "cwl", str(workflow), *args, "-o", str(export)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    relax = ["--relax-path-checks"] if "--relax-path-checks" in made.stderr else []  # file names with spaces (the shell case)
    cwl = subprocess.Popen([sys.executable, "-m", "cwltool", "--quiet", "--no-container", *relax, "--preserve-environment", "PYTHONPATH",
                            "--outdir", str(base / "cwl-out"), str(export / "workflow.cwl"), str(export / "job.yml")],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=base)
    if portaflow_run is None:
        pf = subprocess.Popen([sys.executable, "-m", "portaflow", "-q", "run", str(workflow), *args, "-w", str(base / "pf")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    imported = {engine: subprocess.Popen([sys.executable, "-m", "portaflow", "-q", "run", str(export / "workflow.cwl"), str(export / "job.yml"),
                                          "--engine", engine, "-w", str(base / f"import-{engine}")],
                                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for engine in imports}
    cwl_out, cwl_err = cwl.communicate(timeout=600)
    if portaflow_run is None:
        pf_out, pf_err = pf.communicate(timeout=600)
        assert pf.returncode == 0, pf_out + pf_err
    assert cwl.returncode == 0, cwl_err[-4000:]
    for engine, proc in imported.items():
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"import with {engine}: " + (out + err)[-4000:]
    return {"objects": json.loads(cwl_out), "workdir": portaflow_run or base / "pf", "workflow": workflow, "args": args, "export": export,
            "imports": {engine: base / f"import-{engine}" for engine in imports}}


def _agree(result: dict) -> list[str]:
    return export_outputs_agree(result["objects"], result["workdir"], result["workflow"], result["args"])


@pytest.fixture(scope="module", params=list(CASES) + ["shell"])
def exported_run(request, tmp_path_factory, science_on_local):
    base = tmp_path_factory.mktemp(f"cwl-{request.param}")
    if request.param == "shell":
        path = base / "cwlshell.yaml"
        path.write_text(SHELL_ONLY.lstrip())
        return _both(path, [], base)
    workflow, args = CASES[request.param]
    # the science workflows' portaflow runs are the ones tests/containers/test_podman.py compares with too
    return _both(workflow, args, base, science_on_local(request.param) if request.param in SCIENCE_CASES else None,
                 imports=IMPORT_ENGINES if request.param == "wordfreq" else ())


def test_cwltool_outputs_equal_portaflow_outputs(exported_run):
    """cwltool's outputs of the export equal the portaflow run's; for wordfreq, so do those of the export run through
    portaflow's CWL import with each engine (whose run's RO-Crate has the CWL document as its workflow and passes
    roc-validator)."""
    assert _agree(exported_run) == []
    for engine, workdir in exported_run["imports"].items():
        objects = json.loads((workdir / "output.json").read_text())
        assert set(objects) == set(exported_run["objects"]), engine
        assert _agree({**exported_run, "objects": objects}) == [], engine
        manifest = json.loads((workdir / ".portaflow" / "runs" / "latest" / "manifest.json").read_text())
        assert manifest["engine"] == engine and manifest["status"] == "succeeded"
    if exported_run["imports"]:
        run_dir = (exported_run["imports"]["snakemake"] / ".portaflow" / "runs" / "latest").resolve()
        passed, issues = cratecheck.validate(run_dir)
        assert passed, issues
        graph = {e["@id"]: e for e in json.loads((run_dir / "ro-crate-metadata.json").read_text())["@graph"]}
        assert graph["./"]["mainEntity"]["@id"] == "workflow.cwl" and "subjectOf" not in graph["workflow.cwl"]
    native = (exported_run["workdir"] / ".portaflow" / "runs" / "latest").resolve()  # the native run's crate holds the export
    for name in ("workflow.cwl", "job.yml"):  # the same as `portaflow export cwl` wrote for the same workflow and parameters
        assert (native / "cwl" / name).read_text() == (exported_run["export"] / name).read_text(), name
    assert not (exported_run["workdir"] / "pwned").exists()
    for value in exported_run["objects"].values():
        for item in value if isinstance(value, list) else [value]:
            assert Path(item["path"]).parent.name == "cwl-out"  # cwltool collected every output
