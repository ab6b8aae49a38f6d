"""`portaflow export cwl` (issue 19): the documents cwltool validates, and templates filled as portaflow fills them.

The fill-in test runs the exported JavaScript (portaflow-lib.js and each tool's `pf_spec`) under node, the engine
cwltool uses, and compares what it makes with the planner's own commands and payloads, value for value: a
parameter such as `$(touch pwned)`, floats (`2.0`, `1e-05`), booleans and lists. Runs of exports under cwltool
are in tests/e2e/test_cwl_export.py.
"""

from __future__ import annotations

import io
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from portaflow.driver import load_plan
from portaflow.exchange import cwl_export
from portaflow.spec.loading import load_workflow

from testlib import ROOT, WORKFLOWS, run_portaflow, unavailable

TRICKY = """
name: cwlx
parameters:
  evil: "$(touch pwned); echo 'a' \\"b\\" ${HOME} `id` {x}"
  ratio: 2.0
  tiny: 1.0e-5
  big: 1.0e+20
  flag: true
  words: ["a b", "c'd", "e"]
  n: 2
steps:
  gen:
    scatter: {i: {range: "{n}"}, tag: [x, "y z"]}
    command: printf '%s\\n' {evil} {ratio} {tiny} {big} {flag} {words} {i} {tag} {resources.cores} > {outputs.out}
    outputs: {out: "gen/{i}_{tag}_{ratio}.txt"}
  pick:
    scatter: {tag: [x, "y z"]}
    command: cat {inputs.one} {inputs.row} > {outputs.o}
    inputs:
      one: "gen/1_x_2.0.txt"
      row: "gen/{i}_{tag}_2.0.txt"
    outputs: {o: "pick/{tag}.txt"}
  py:
    python: portaflow.examples.wordfreq:merge
    args:
      top: "{n}"
      ratio: "{ratio}"
      text: "r={ratio} f={flag} w={words}"
      nested: {a: ["{tiny}", 3.0, "{flag}"], b: "{evil}"}
    inputs: {rows: "pick/{tag}.txt", one: "gen/0_x_2.0.txt"}
    outputs: {table: {path: "results/t_{big}.json", compare: json}}
"""


def _export(path: Path, site: str = "local", params: dict | None = None, workdir: Path | None = None) -> tuple[cwl_export.Export, object]:
    loaded_wf, loaded_site, plan = load_plan(load_workflow(path), site, {}, params or {})
    return cwl_export.build(loaded_wf, loaded_site, plan, workdir or Path("work") / plan.workflow), plan


def _spec(tool: dict) -> str:
    return next(e for e in tool["requirements"]["InlineJavascriptRequirement"]["expressionLib"] if isinstance(e, str))


def _tool_inputs(task, plan) -> dict:
    """The CWL input object cwltool hands the task's tool (input files at the paths the plan names)."""
    values = {f"s_{k}": v for k, v in task.scatter}
    values.update({f"p_{k}": v for k, v in plan.parameters.items()})
    for key, value in task.inputs.items():
        values[f"i_{key}"] = {"class": "File", "path": value} if isinstance(value, str) else [{"class": "File", "path": p} for p in value]
    return values


def _node(script: str) -> str:
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        unavailable("no node (cwltool's JavaScript engine) on PATH: apt-get install nodejs")
    result = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_exported_javascript_fills_templates_exactly_as_the_planner(write):
    path = write("cwlx.yaml", TRICKY)
    export, plan = _export(path)
    library = (ROOT / "src" / "portaflow" / "exchange" / cwl_export.LIBRARY).read_text()
    cases = []
    for task in plan.tasks:
        tool = export.tools[cwl_export.tool_file(task.step)]
        call = "pf_command" if task.kind == "command" else "pf_payload"
        outputs = [f"pf_output(inputs, {json.dumps(k)})" for k in task.outputs]
        spec = _spec(tool).removeprefix("var ")  # each case sets the global pf_spec that cwltool's per-tool expressionLib sets
        cases.append(f"(function () {{ {spec} var inputs = {json.dumps(_tool_inputs(task, plan))}; "
                     f"return [{call}(inputs), [{', '.join(outputs)}]]; }})()")
    out = json.loads(_node(library + "\nconsole.log(JSON.stringify([" + ",\n".join(cases) + "]));"))
    assert len(out) == len(plan.tasks) == 4 + 2 + 1
    for task, (made, paths) in zip(plan.tasks, out, strict=True):
        assert paths == [o.path for o in task.outputs.values()], task.display  # the globs find what the step writes
        if task.kind == "command":
            dirs = sorted({str(Path(o.path).parent) for o in task.outputs.values()})
            assert made == "set -eo pipefail\nmkdir -p -- " + " ".join(shlex.quote(d) for d in dirs) + "\n" + task.command, task.display
        else:
            planned = shlex.split(task.command)[-1]
            assert json.dumps(json.loads(made), sort_keys=True) == json.dumps(json.loads(planned), sort_keys=True)  # 2.0 stays a float
    assert "$(touch pwned)" in plan.tasks[0].command and "'$(touch pwned);" in plan.tasks[0].command  # quoted, as data


def test_scatter_wiring_and_requirements(write):
    export, _ = _export(write("cwlx.yaml", TRICKY))
    steps = export.workflow["steps"]
    assert steps["gen"]["scatter"] == ["s_i", "s_tag"] and steps["gen"]["scatterMethod"] == "flat_crossproduct"
    assert steps["gen"]["in"]["s_i"] == {"default": [0, 1]} and steps["gen"]["in"]["s_tag"] == {"default": ["x", "y z"]}
    # pick: one fixed element of gen's outputs, and per task the element of its own tag: chosen from the plan
    one, row = steps["pick"]["in"]["i_one"], steps["pick"]["in"]["i_row"]
    assert one["source"] == ["gen/out"] and "[2,2]" in one["valueFrom"]  # gen[i=1,tag=x] is gen's third task
    assert row["source"] == ["gen/out"] and "[[0,2],[1,3]]" in row["valueFrom"]
    assert export.workflow["outputs"]["gen__out"]["type"] == {"type": "array", "items": "File"}
    # fixed at export: n shapes the fan-out; parameters the tools use are inputs with defaults, in the job file too
    assert "n" not in export.workflow["inputs"] and steps["py"]["in"]["p_n"] == {"default": 2}
    assert export.workflow["inputs"]["ratio"] == {"type": "double", "default": 2.0, "label": "parameter ratio"}
    assert export.job["words"] == ["a b", "c'd", "e"] and export.workflow["inputs"]["words"]["type"] == {"type": "array", "items": "string"}
    wordfreq, _ = _export(WORKFLOWS / "examples" / "wordfreq.yaml")
    count = wordfreq.workflow["steps"]["count"]
    assert count["scatter"] == ["s_shard", "i_text"] and count["scatterMethod"] == "dotproduct"
    assert wordfreq.workflow["steps"]["merge"]["in"]["i_counts"] == {"source": "count/counts"}  # a gather: the whole array
    tool = wordfreq.tools["step-count.cwl"]
    assert tool["requirements"]["ResourceRequirement"] == {"coresMin": 1, "ramMin": 245}  # 256MB
    assert tool["requirements"]["ToolTimeLimit"] == {"timelimit": 300} and tool["baseCommand"] == ["bash", "-c"]
    assert wordfreq.tools["step-merge.cwl"]["baseCommand"] == ["python3", "-m", "portaflow.runtime.call"]


def test_a_parameter_named_like_a_step_gets_an_id_of_its_own(tmp_path):
    text = (WORKFLOWS / "examples" / "wordfreq.yaml").read_text().replace("  top: 10", "  count: 10").replace('"{top}"', '"{count}"')
    path = tmp_path / "clash.yaml"
    path.write_text(text)
    export, _ = _export(path)
    assert export.workflow["inputs"]["count_param"]["default"] == 10 and "count" not in export.workflow["inputs"]
    assert export.workflow["steps"]["merge"]["in"]["p_count"] == "count_param" and export.job["count_param"] == 10
    cwl_export.write(export, tmp_path / "cwl")
    rc, log = _validate(tmp_path / "cwl" / "workflow.cwl")
    assert rc == 0 and "previously defined" not in log, log


def test_containers_resources_gpus_and_dask():
    hep, plan = _export(WORKFLOWS / "hep" / "zmumu.yaml", "local-podman")
    reduce = hep.tools["step-reduce.cwl"]
    assert reduce["hints"]["DockerRequirement"] == {"dockerPull": "localhost/portaflow-hep:latest"}
    task = next(t for t in plan.tasks if t.step == "reduce")
    assert reduce["requirements"]["ResourceRequirement"] == {"coresMin": task.resources.cores, "ramMin": task.resources.memory_mib}
    assert task.resources.cores >= 2  # the Dask workers run in the step's job
    dask = json.loads(json.loads(_spec(reduce).removeprefix("var pf_spec = ").removesuffix(";"))["env"]["PORTAFLOW_DASK"][0])
    assert dask["mode"] == "local" and dask["cpu_workers"] == 2
    # a site without a container runtime: the tag `portaflow containers build` gives the recipe
    local, _ = _export(WORKFLOWS / "radio" / "imaging.yaml")
    assert local.tools["step-image.cwl"]["hints"]["DockerRequirement"] == {"dockerPull": "localhost/portaflow-radio:latest"}
    assert local.workflow["outputs"]["simulate__ms"]["type"] == "Directory"
    gpu, _ = _export(WORKFLOWS / "hep" / "zmumu-gpu.yaml", "slurm-local")
    cuda = gpu.tools["step-reduce.cwl"]["hints"]["cwltool:CUDARequirement"]
    assert cuda["cudaDeviceCountMin"] == 1


def test_an_input_no_step_makes_is_a_workflow_input_found_as_portaflow_finds_it(tmp_path):
    (tmp_path / "obs.ms").mkdir()
    export, _ = _export(WORKFLOWS / "radio" / "image-ms.yaml", params={"ms": "obs.ms"}, workdir=tmp_path)
    assert export.workflow["inputs"]["ms"]["type"] == ["File", "Directory"]  # named after the parameter that gives it
    assert export.workflow["steps"]["image"]["in"]["i_ms"] == {"source": "ms"}
    assert export.job["ms"] == {"class": "Directory", "path": str(tmp_path / "obs.ms")}  # relative to the work directory
    assert "ms" not in export.job or not isinstance(export.job.get("npix"), dict)
    assert "fixed at export" in export.workflow["doc"].lower() and "ms='obs.ms'" in export.workflow["doc"]


def _validate(path: Path) -> tuple[int, str]:
    from cwltool.main import main as cwltool_main

    stderr = io.StringIO()
    rc = cwltool_main(["--validate", str(path)], stdout=io.StringIO(), stderr=stderr)
    return rc, stderr.getvalue()


SHIPPED = sorted(WORKFLOWS.glob("*/*.yaml"))
GPU_SITE = {"zmumu-gpu.yaml": "example-cloud-gpu-k8s", "imaging-gpu.yaml": "example-cloud-gpu-k8s"}
"""GPU workflows export for a site with GPUs (on `local` the plan refuses them: no partition has GPUs)."""


@pytest.mark.parametrize("path", SHIPPED, ids=[f"{p.parent.name}/{p.stem}" for p in SHIPPED])
def test_every_shipped_workflow_exports_and_validates(path, tmp_path):
    export, _ = _export(path, GPU_SITE.get(path.name, "local"))
    files = cwl_export.write(export, tmp_path / "cwl")
    rc, log = _validate(tmp_path / "cwl" / cwl_export.WORKFLOW_FILE)
    assert rc == 0, log
    assert {f.name for f in files} == {"workflow.cwl", "job.yml", "portaflow-lib.js"} | set(export.tools)
    job = YAML(typ="safe").load((tmp_path / "cwl" / "job.yml").read_text())
    assert job == {k: v["default"] for k, v in export.workflow["inputs"].items() if "default" in v} | {
        k: v for k, v in job.items() if isinstance(v, dict)}


def test_gpu_workflow_on_a_site_without_gpus_is_refused_with_its_place(tmp_path):
    out = tmp_path / "cwl"
    result = run_portaflow("export", "cwl", str(WORKFLOWS / "hep" / "zmumu-gpu.yaml"), "-o", str(out))
    assert result.returncode == 2 and "zmumu-gpu.yaml:" in result.stderr and "no GPUs" in result.stderr, result.stderr
    assert not out.exists()


def test_multi_node_step_cannot_be_exported(write, tmp_path):
    path = write("nodes.yaml", """
        name: nodes
        steps:
          mpi:
            command: echo hi > {outputs.o}
            outputs: {o: o.txt}
            resources: {nodes: 2}
        """)
    out = tmp_path / "cwl"
    result = run_portaflow("export", "cwl", str(path), "-o", str(out), "--site", "example-hpc-mem-per-cpu")
    assert result.returncode == 2, result.stderr
    assert f"{path}:6:" in result.stderr and "steps.mpi.resources.nodes" in result.stderr and "one node" in result.stderr
    assert "Traceback" not in result.stderr and not out.exists() and not list(tmp_path.glob(".cwl*"))


def test_output_folder_with_other_files_is_left_alone(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    result = run_portaflow("export", "cwl", str(WORKFLOWS / "examples" / "wordfreq.yaml"), "-o", str(out))
    assert result.returncode == 2 and "not an empty folder or an earlier CWL export" in result.stderr, result.stderr
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and not list(tmp_path.glob(".mine*"))
    # an earlier export is replaced whole
    again = tmp_path / "again"
    for top in ("10", "3"):
        result = run_portaflow("export", "cwl", "examples/wordfreq", "--param", f"top={top}", "-o", str(again))
        assert result.returncode == 0, result.stderr
    assert "top: 3" in (again / "job.yml").read_text() and sorted(p.name for p in tmp_path.iterdir()) == ["again", "mine"]


def test_unknown_parameter_is_exit_2_and_writes_nothing(tmp_path):
    out = tmp_path / "cwl"
    result = run_portaflow("export", "cwl", "examples/wordfreq", "--param", "tpo=3", "-o", str(out))
    assert result.returncode == 2 and "did you mean" in result.stderr and not out.exists(), result.stderr
