"""CWL import (spec/cwl.py, runtime/cwlstep.py): a CWL v1.2 document becomes a portaflow plan on a site.

The documents under tests/data/cwl/ are written for these tests from the CWL v1.2 specification. Loading is
cwltool's (so a schema error carries the document's file:line:col); the request, partition and DAG are portaflow's.
The end-to-end runs through both engines are in tests/e2e/test_cwl_import.py and tests/slurm/test_cwl_slurm.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from portaflow.errors import InputError, SpecError
from portaflow.plan import make_plan
from portaflow.spec.cwl import load_cwl
from portaflow.spec.loading import load_site
from portaflow.spec.site import ContainerSettings

from testlib import ROOT, run_portaflow

CWL = ROOT / "tests" / "data" / "cwl"
POLICY_SITE = ROOT / "tests" / "data" / "sites" / "slurm-partition-policy.yaml"


def test_resource_requirement_chooses_the_partition():
    """coresMin/ramMin/ToolTimeLimit and cwltool:CUDARequirement are the task's request; the site's policy picks."""
    plan = make_plan(load_cwl(CWL / "resources.cwl").workflow, load_site(str(POLICY_SITE), environ={}).site)
    tasks = {t.id: t for t in plan.tasks}
    small, gpu = tasks["small"], tasks["gpu"]
    assert (small.partition, small.resources.cores, small.resources.memory_mib, small.resources.walltime_s) == ("shared", 2, 3000 + 256, 600)
    assert (gpu.partition, gpu.resources.gpus, gpu.resources.cores, gpu.resources.memory_mib) == ("gpu-l40s", 1, 4, 8000 + 256)
    assert set(tasks["cwl_outputs"].depends) == {"small", "gpu"}


def test_a_request_no_partition_satisfies_is_refused_before_anything_runs(tmp_path):
    result = run_portaflow("run", str(CWL / "too-big.cwl"), "--workdir", str(tmp_path / "wd"))
    assert result.returncode == 2, result.stderr
    assert "too-big.cwl:" in result.stderr and "needs 1000 cores" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "wd").exists()


def test_an_invalid_document_is_reported_with_file_line_and_exit_2(tmp_path):
    for command in (["validate"], ["plan"], ["run", "--workdir", str(tmp_path / "wd")]):
        result = run_portaflow(*command, str(CWL / "bad.cwl"))
        assert result.returncode == 2, (command, result.stderr)
        # schema-salad's own located messages: the misspelled field and the output without a type
        assert "bad.cwl:4:1:" in result.stderr and "invalid field 'basecommand'" in result.stderr, result.stderr
        assert "bad.cwl:8:3:" in result.stderr and "missing required field 'type'" in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "wd").exists()
    with pytest.raises(SpecError):
        load_cwl(CWL / "bad.cwl")


def test_a_workflow_is_one_task_per_top_level_step_wired_by_its_sources():
    """One task per top-level step, except a scatter over values the job gives (dotproduct, flat_crossproduct): one
    task per element and one that gathers them, under the step's name (what downstream steps wait for). A
    nested_crossproduct stays one task."""
    loaded = load_cwl(CWL / "features.cwl", CWL / "features-job.yml")
    plan = make_plan(loaded.workflow, load_site("local", environ={}).site)
    depends = {t.id: set(t.depends) for t in plan.tasks}
    repeat = {f"repeat_element__repeat_n_{i}" for i in range(2)}       # words x counts, dotproduct: 2
    flat = {f"label_flat_element__label_flat_n_{i}" for i in range(4)}  # flat_crossproduct: 2 x 2
    assert depends == {
        **{t: set() for t in repeat | flat},
        "repeat": repeat, "label_flat": flat, "label_nested": set(), "sum": set(),
        "sub": {"repeat"},                      # a subworkflow: one task, cwltool runs its steps
        "big": {"sum"}, "small": {"sum"},       # `when` conditions: evaluated by cwltool in the task
        "cwl_outputs": {"repeat", "label_flat", "label_nested", "sum", "sub", "big", "small"},
    }
    assert "--element 3 " in plan.by_id["label_flat_element__label_flat_n_3"].command
    # The document, the files it runs and the job are inputs of every task: editing one reruns the workflow.
    inputs = set(plan.by_id["label_nested"].input_paths())
    assert {str(CWL / n) for n in ("features.cwl", "features-job.yml", "label.cwl")} <= inputs


def test_a_scatter_is_split_only_where_its_length_is_known_when_the_plan_is_made(tmp_path):
    """Over an upstream step's output, a nested_crossproduct, a dotproduct of unequal lengths: one task."""
    (tmp_path / "job.yml").write_text("words: [a, b, c]\ncounts: [1, 2]\n")
    loaded = load_cwl(CWL / "features.cwl", tmp_path / "job.yml")
    steps = set(loaded.workflow.steps)
    assert "repeat_element" not in steps and "label_flat_element" in steps  # unequal dotproduct: cwltool's error, one task
    assert loaded.workflow.steps["label_flat_element"].scatter == {"label_flat_n": list(range(6))}
    doc = tmp_path / "chain.cwl"
    chain = """cwlVersion: v1.2
class: Workflow
requirements:
  ScatterFeatureRequirement: {}
inputs:
  words: string[]
outputs:
  labels:
    type: string[]
    outputSource: again/label
steps:
  first:
    run: LABEL
    scatter: word
    in: {word: words, count: {default: 1}}
    out: [label]
  again:
    run: LABEL
    scatter: word
    in: {word: first/label, count: {default: 2}}
    out: [label]
"""
    doc.write_text(chain.replace("LABEL", str(CWL / "label.cwl")))
    (tmp_path / "chain.yml").write_text("words: [x, y, z]\n")
    steps = load_cwl(doc, tmp_path / "chain.yml").workflow.steps
    assert steps["first_element"].scatter == {"first_n": [0, 1, 2]} and "again_element" not in steps


def test_one_element_and_gather_are_cwltools_scatter_cut_and_joined():
    """The input object of element N (dotproduct: the N-th of each; flat_crossproduct: the first input outermost, as
    cwltool's flat arrays are ordered), and the gathered arrays in element order."""
    from portaflow.runtime.cwlstep import one_element

    step = {"scatter": ["#s/word", "#s/count"], "scatterMethod": "flat_crossproduct"}
    inputs = {"word": ["a", "b"], "count": [1, 2, 3], "fixed": "x"}
    cut = [one_element(step, inputs, n) for n in range(6)]
    assert [(c["word"][0], c["count"][0]) for c in cut] == [("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 2), ("b", 3)]
    assert all(c["fixed"] == "x" and len(c["word"]) == len(c["count"]) == 1 for c in cut)
    dot = {"scatter": ["#s/word", "#s/count"], "scatterMethod": "dotproduct"}
    assert one_element(dot, {"word": ["a", "b"], "count": [1, 2]}, 1) == {"word": ["b"], "count": [2]}
    with pytest.raises(ValueError):
        one_element(step, inputs, 6)
    with pytest.raises(ValueError, match="3 when the plan was made"):  # the values changed since: no element left out
        one_element(dot, {"word": ["a", "b"], "count": [1, 2]}, 0, expected=3)


def test_gather_joins_the_elements_outputs_in_order(tmp_path):
    from portaflow.runtime.cwlstep import gather

    parts = []
    for n, label in enumerate(["a-1", None, "b-2"]):
        parts.append(tmp_path / f"{n}.json")
        parts[-1].write_text(json.dumps({"label": [label]}))
    assert gather({"elements": [str(p) for p in parts]}, tmp_path / "out.json", tmp_path / "out") == 0
    assert json.loads((tmp_path / "out.json").read_text()) == {"label": ["a-1", None, "b-2"]}
    parts[1].write_text(json.dumps({"label": "not a list"}))
    assert gather({"elements": [str(p) for p in parts]}, tmp_path / "bad.json", tmp_path / "out") == 1


def test_a_command_line_tool_is_one_task_and_its_job_files_are_inputs():
    plan = make_plan(load_cwl(CWL / "wc-tool.cwl", CWL / "wc-job.yml").workflow, load_site("local", environ={}).site)
    [task] = plan.tasks
    assert set(task.output_paths()) == {"output.json", "output"}
    assert str(CWL / "text.txt") in task.input_paths()  # the File the job names, resolved against the job's directory


@pytest.mark.parametrize(("runtime", "flag"), [("none", "--no-container"), ("podman", "--podman"), ("apptainer", "--singularity"),
                                               ("singularity", "--singularity")])
def test_docker_requirement_runs_in_the_sites_runtime(runtime, flag):
    loaded = load_cwl(CWL / "in-container.cwl", None, ContainerSettings(runtime=runtime))
    [step] = loaded.workflow.steps.values()
    assert flag in step.command and step.container is None  # cwltool starts the tool's own image, not portaflow


def test_a_missing_job_file_is_bad_input():
    with pytest.raises(InputError, match="no such CWL input object"):
        load_cwl(CWL / "wc-tool.cwl", CWL / "no-such-job.yml")


@pytest.mark.slow  # two cwltool processes: about 6 s on an idle 2-core machine (90 s with load average 15)
def test_a_step_fed_by_a_skipped_step_and_by_valuefrom_alone_runs(tmp_path):
    """`cwltool --single-step` declares a step's inputs `Any` (never null): a step whose only input is a valueFrom, or
    fed by a step `when` skipped, would be refused. The task runs the extracted step with inputs [null, Any]."""
    loaded = load_cwl(CWL / "features.cwl", CWL / "features-job.yml")
    plan = make_plan(loaded.workflow, load_site("local", environ={}).site)
    (tmp_path / "cwl" / "sum").mkdir(parents=True)
    (tmp_path / "cwl" / "sum" / "outputs.json").write_text(json.dumps({"total": 3}))  # what the sum task would write
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    for name, says in (("big", None), ("small", "few")):  # threshold 3: total 3 is not > 3
        proc = subprocess.run(["bash", "-c", plan.by_id[name].command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert json.loads((tmp_path / "cwl" / name / "outputs.json").read_text()) == {"says": says}


def test_a_required_docker_image_on_a_site_without_containers_exits_33(tmp_path):
    """As `cwltool --no-container`: a DockerRequirement under requirements is an unsupported requirement there, and the
    task says so with cwl-runner's exit status 33 (portaflow-cwl-runner passes it on)."""
    [task] = make_plan(load_cwl(CWL / "in-container.cwl").workflow, load_site("local", environ={}).site).tasks
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", task.command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 33, proc.stderr[-3000:]
    assert "DockerRequirement" in proc.stderr and not (tmp_path / "output.json").exists()
