"""Issue 16: SPANK plugins' sbatch options (pyxis' `--container-image`, NERSC's `--module`) declared in
`slurm.spank_options`: rendered into both engines' jobs as extra directives, left out of this machine's `sbatch --usage`
check (which does not know them) and reported as not checkable here by `validate` and the portability matrix, instead
of failing the cell."""

from __future__ import annotations

import shutil

import pytest

from portaflow.errors import SpecError
from portaflow.matrix import FAILED, RENDERED, Cell, render_cell
from portaflow.plan import make_plan
from portaflow.schedulers import adapter_for
from portaflow.schedulers.slurm.snakemake import rule_resources
from portaflow.spec.loading import load_site
from portaflow.spec.workflow import Workflow

from testlib import run_portaflow

PYXIS = """\
name: pyxis
scheduler: slurm
account: proj
partitions:
  gpu:
    max_walltime: 1d
    cores_per_node: 64
    memory_per_node: 512GB
    gpus_per_node: 8
    extra_directives: ["--container-image=nvcr.io#nvidia/pytorch:24.01-py3", "--container-mounts=/scratch:/scratch"]
slurm:
  spank_options: [--container-image, --container-mounts]
"""
WORKFLOW = "name: w\nsteps:\n  s: {command: 'true', outputs: {o: o}, resources: {cores: 4, gpus: 1}}\n"
needs_sbatch = pytest.mark.skipif(shutil.which("sbatch") is None, reason="sbatch is not installed (tests/slurm/cluster.sh up installs it)")


def _site(write, text: str = PYXIS):
    loaded = load_site(str(write("site.yaml", text)), environ={})
    adapter = adapter_for(loaded)
    adapter.check()
    return loaded, adapter


def test_spank_options_reach_both_engines(write, tmp_path):
    loaded, adapter = _site(write)
    [task] = make_plan(Workflow.model_validate({"name": "w", "steps": {"s": {"command": "true", "outputs": {"o": "o"},
                                                                                "resources": {"gpus": 1}}}}), loaded.site).tasks
    assert "--container-image=nvcr.io#nvidia/pytorch:24.01-py3" in adapter.directives(task.resources, task.partition)
    assert "--container-image=nvcr.io#nvidia/pytorch:24.01-py3" in rule_resources(adapter, task)["slurm_extra"]
    assert adapter.unverifiable_here() == ["--container-image (a SPANK plugin's option of site pyxis)",
                                           "--container-mounts (a SPANK plugin's option of site pyxis)"]


@needs_sbatch
def test_matrix_cell_is_rendered_with_a_note_not_failed(write, tmp_path):
    loaded, _ = _site(write)
    plan = make_plan(Workflow.model_validate({"name": "w", "steps": {"s": {"command": "true", "outputs": {"o": "o"},
                                                                            "resources": {"gpus": 1}}}}), loaded.site)
    cell = Cell("w", "pyxis", "parsl")
    render_cell(cell, plan, loaded, tmp_path / "cell", "example")
    assert cell.status == RENDERED, cell.reason
    assert "not checkable here: --container-image" in cell.reason
    # undeclared, the same option fails the cell, saying where to declare it (the old behaviour, now with a hint)
    loaded, _ = _site(write, PYXIS.replace("  spank_options: [--container-image, --container-mounts]\n", "  qos: normal\n"))
    cell = Cell("w", "pyxis", "parsl")
    render_cell(cell, plan, loaded, tmp_path / "cell2", "example")
    assert cell.status == FAILED and "unrecognized option" in cell.reason and "slurm.spank_options" in cell.reason


def test_validate_says_what_it_cannot_check(write):
    result = run_portaflow("validate", str(write("site.yaml", PYXIS)))
    assert result.returncode == 0, result.stderr
    assert "not checkable here: --container-image (a SPANK plugin's option of site pyxis)" in result.stdout


@pytest.mark.parametrize(("option", "message"), [("--gres", "sbatch's own option"), ("container-image", "a long option's name"),
                                                 ("--container-image=x", "a long option's name")])
def test_bad_spank_options_are_refused_at_their_line(write, option, message):
    with pytest.raises(SpecError, match=message) as exc:
        _site(write, PYXIS.replace("[--container-image, --container-mounts]", f"['{option}']"))
    assert ":12:" in str(exc.value)
