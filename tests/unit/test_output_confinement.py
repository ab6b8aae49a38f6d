"""Output paths stay inside the work directory: refused as written and after parameters are filled in (validate,
plan, run: exit 2 with file:line, nothing written), and the remover itself never acts outside the work directory."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from portaflow.engines.base import remove_outputs as remove_task_outputs
from portaflow.errors import SpecError
from portaflow.plan.model import OutputPlan, Task, TaskResources
from portaflow.runtime.call import remove_outputs
from portaflow.spec.loading import load_workflow
from portaflow.spec.workflow import Comparison

from testlib import run_portaflow

LITERAL = """\
name: t
steps:
  a:
    command: echo hi > {outputs.x}
    outputs:
      x: OUTPUT
"""

PARAMETERISED = """\
name: t
parameters:
  outdir: out
  run: r1
steps:
  a:
    command: mkdir -p {outputs.d}
    outputs:
      d: {path: "{outdir}", directory: true}
  b:
    command: mkdir -p {outputs.d}
    outputs:
      d: {path: "runs/{run}", directory: true}
"""


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("output, why", [
    ("/tmp/abs.txt", "is absolute"),
    ('"/{x}/y"', "is absolute"),
    ("runs/../../up", "leaves the work directory"),
    ("..", "leaves the work directory"),
    ('"."', "is the work directory itself"),
    ('"./"', "is the work directory itself"),
    ('{path: ".", directory: true}', "is the work directory itself"),
])
def test_literal_output_paths_that_leave_the_work_directory_are_refused_with_file_line(tmp_path, output, why):
    wf = write(tmp_path, LITERAL.replace("OUTPUT", output))
    with pytest.raises(SpecError) as info:
        load_workflow(wf)
    text = str(info.value)
    assert re.search(rf"{re.escape(str(wf))}:6:\d+: steps\.a\.outputs\.x(\.path)?: output path .* {why}", text), text
    result = run_portaflow("validate", str(wf))
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{wf}:6:" in result.stderr and "steps.a.outputs.x" in result.stderr and why in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("output", ["out.txt", "runs/{run}/x", "a/./b", "a..b/c..txt"])
def test_paths_inside_the_work_directory_pass(tmp_path, output):
    load_workflow(write(tmp_path, LITERAL.replace("OUTPUT", f'"{output}"').replace("name: t", "name: t\nparameters: {run: r}")))


@pytest.mark.parametrize("param, path, why, line", [
    ("outdir=/home/me", "'/home/me'", "is absolute", 9),
    ("outdir=.", "'.'", "is the work directory itself", 9),
    ("outdir=a/../..", "'a/../..'", "leaves the work directory", 9),
    ("run=../..", "'runs/../..'", "leaves the work directory", 13),
])
@pytest.mark.parametrize("command", ["plan", "run"])
def test_parameters_cannot_move_an_output_out_of_the_work_directory(tmp_path, param, path, why, line, command):
    wf = write(tmp_path, PARAMETERISED)
    workdir = tmp_path / "wd"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    args = ["--param", param] + (["--workdir", str(workdir)] if command == "run" else [])
    result = run_portaflow(command, str(wf), *args, cwd=victim)
    assert result.returncode == 2, result.stdout + result.stderr
    step = "b" if param.startswith("run=") else "a"
    assert f"{wf}:{line}:" in result.stderr, result.stderr
    assert f"step {step}: output d is {path}" in result.stderr and why in result.stderr
    assert "Traceback" not in result.stderr
    assert not workdir.exists(), "a refused run wrote into its work directory"
    assert (victim / "keep.txt").read_text() == "mine"


def test_validate_fills_in_the_default_parameters(tmp_path):
    wf = write(tmp_path, PARAMETERISED.replace("outdir: out", "outdir: /home/me"))
    result = run_portaflow("validate", str(wf))
    assert result.returncode == 2
    assert f"{wf}:9:" in result.stderr and "step a: output d is '/home/me'" in result.stderr
    assert run_portaflow("validate", str(write(tmp_path, PARAMETERISED, "ok.yaml"))).returncode == 0


def test_validate_fills_in_scatter_values(tmp_path):
    wf = write(tmp_path, """\
        name: t
        steps:
          a:
            scatter: {part: [x, ".."]}
            command: touch {outputs.o}
            outputs: {o: "{part}"}
        """)
    result = run_portaflow("validate", str(wf))
    assert result.returncode == 2 and "step a: output o is '..'" in result.stderr, result.stderr


def test_the_remover_never_acts_outside_its_root(tmp_path):
    root = tmp_path / "work"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f.txt").write_text("keep")
    (root / "escape").symlink_to(outside)
    (root / "link").symlink_to(outside)
    (root / "inside").mkdir()
    (root / "inside" / "x").write_text("stale")
    (root / "file.txt").write_text("stale")
    refused = remove_outputs({"a": str(outside), "b": "../outside", "c": ".", "d": "", "e": "escape/f.txt", "f": str(root)}, root=root)
    assert sorted(refused) == sorted([str(outside), "../outside", ".", "", "escape/f.txt", str(root)])
    assert (outside / "f.txt").read_text() == "keep" and root.is_dir()
    assert remove_outputs({"a": "inside", "b": "file.txt", "c": "link", "d": str(root / "missing")}, root=root) == []
    assert not (root / "inside").exists() and not (root / "file.txt").exists()
    assert not (root / "link").is_symlink() and (outside / "f.txt").read_text() == "keep", "a symlink was followed"


def test_the_remover_defaults_to_the_directory_a_step_runs_in(tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    (tmp_path / "sibling.txt").write_text("keep")
    (tmp_path / "work" / "out.txt").write_text("stale")
    monkeypatch.chdir(tmp_path / "work")
    assert remove_outputs({"a": "../sibling.txt", "b": "out.txt"}) == ["../sibling.txt"]
    assert (tmp_path / "sibling.txt").exists() and not (tmp_path / "work" / "out.txt").exists()


def test_a_task_whose_output_escaped_the_planner_removes_nothing_outside(tmp_path):
    """The engines' and driver's remover checks each path again, whatever a Task holds."""
    workdir = tmp_path / "work"
    workdir.mkdir()
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "data").write_text("keep")
    outputs = {k: OutputPlan(k, p, True, Comparison()) for k, p in {"up": "..", "abs": str(tmp_path / "precious"), "here": ""}.items()}
    task = Task("t", "t", "t", "command", (), {}, outputs, "true", TaskResources(1, 1, 1), "local", None, {}, 0, ())
    remove_task_outputs(workdir, task)
    assert (tmp_path / "precious" / "data").read_text() == "keep" and workdir.is_dir()
