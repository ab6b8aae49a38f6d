"""`portaflow export cwl`: a portaflow workflow as a CWL v1.2 Workflow, one CommandLineTool per step, and a job file.

Why CWL: the infrastructures portaflow's users work with (WorkflowHub, REANA, EOSC) exchange workflows as CWL, and
cwltool runs it anywhere. The export keeps portaflow's meaning rather than re-deriving it:

- a step's tasks are a CWL `scatter` over its scatter variables (`flat_crossproduct` in the planner's order; a
  single variable whose files come one per task from a step scattered the same way is a `dotproduct` over both);
- which files each task reads is taken from the plan (fan-out is fixed when the plan is made, so the exported
  fan-out is too): a step input is its producer's output, or, where the plan picks some of them, those files,
  chosen by a small table (`pf_pick` in portaflow-lib.js);
- templates are filled when the tool runs, by portaflow-lib.js, exactly as portaflow fills them (Python's `str`,
  every value shell-quoted in commands, Python's JSON for `python -m portaflow.runtime.call`'s payload). A step's
  templates reach the tools as data (`pf_spec`, JSON), never as code;
- containers, resources, walltime, GPUs and environment become DockerRequirement, ResourceRequirement,
  ToolTimeLimit, `cwltool:CUDARequirement` and EnvVarRequirement; a Dask step gets a local cluster in its job.

What CWL cannot say is refused with the place in the workflow file (multi-node steps), or left out and documented
in docs/cwl.md (retries, GPU models, the site's partitions and modules).
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from portaflow.containers import resolve_image
from portaflow.containers.build import default_image
from portaflow.errors import InputError, Problem, SpecError
from portaflow.plan.model import DaskPlan, Plan, Task, TaskResources
from portaflow.plan.planner import scatter_values, with_in_allocation_workers
from portaflow.plan.templates import TemplateError, fields
from portaflow.spec.cwl import is_cwl
from portaflow.spec.loading import LoadedSite, LoadedWorkflow, load_workflow
from portaflow.spec.templates import scan
from portaflow.spec.workflow import Step

log = logging.getLogger(__name__)

LIBRARY = "portaflow-lib.js"
WORKFLOW_FILE = "workflow.cwl"
JOB_FILE = "job.yml"
CALL_COMMAND = ["python3", "-m", "portaflow.runtime.call"]
"""As the planner's CALL_ENTRY: the step's callable through portaflow's entry point (python3 on the job's PATH)."""
CUDA_VERSION_MIN = "11.2"
CUDA_COMPUTE_CAPABILITY = "6.0"
"""What portaflow's GPU paths (CuPy 12+) need at least; cwltool's CUDARequirement asks for both."""
RESOURCE_FIELDS = ("resources.cores", "resources.gpus", "resources.memory_mib", "resources.walltime_s")


def tool_file(step: str) -> str:
    return f"step-{step}.cwl"


def output_id(step: str, key: str) -> str:
    """A step output's id among the workflow's outputs."""
    return f"{step}__{key}"


@dataclass
class Export:
    """The documents of one export, as plain data (YAML-dumped when written)."""

    workflow: dict[str, Any]
    tools: dict[str, dict[str, Any]]
    job: dict[str, Any]
    outputs: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Workflow output id -> (step, output key)."""


def type_tag(value: Any) -> str:
    """portaflow's type of a value, as portaflow-lib.js reads it ('int', 'float', 'list:str', 'any')."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        items = {type_tag(v) for v in value}
        return f"list:{items.pop()}" if len(items) == 1 else "list:any"
    return "any"


def cwl_type(values: list[Any]) -> Any:
    """The CWL type that holds every one of `values` (Any when they differ)."""
    tags = {type_tag(v) for v in values}
    if len(tags) != 1:
        return "Any"
    tag = tags.pop()
    if tag == "int":
        return "long" if any(abs(v) >= 2 ** 31 for v in values) else "int"
    simple = {"bool": "boolean", "float": "double", "str": "string"}
    if tag in simple:
        return simple[tag]
    if tag.startswith("list:"):
        items = cwl_type([item for v in values for item in v]) if any(values) else "Any"
        return {"type": "array", "items": items}
    return "Any"


def template_parts(template: str) -> list[Any]:
    """A template as portaflow-lib.js renders it: literal strings and one-element lists naming a field."""
    return [piece.literal if piece.name is None else [piece.name] for piece in scan(template)]


def _names(template: str) -> list[str]:
    try:
        return list(dict.fromkeys(fields(template)))
    except TemplateError:
        return []


def _strings(value: Any) -> list[str]:
    """Every string in an args tree or scatter spec (the templates in it)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _arg_node(value: Any) -> dict[str, Any]:
    """A callable's argument for pf_arg: '{p}' alone keeps the parameter's type (render_arg), other strings are text."""
    if isinstance(value, str):
        names = _names(value)
        if len(names) == 1 and value == "{" + names[0] + "}":
            return {"f": names[0]}
        return {"t": template_parts(value)}
    if isinstance(value, list):
        return {"l": [_arg_node(v) for v in value]}
    if isinstance(value, dict):
        return {"d": [[k, _arg_node(v)] for k, v in value.items()]}
    return {"v": value, "ty": type_tag(value)}


def fixed_parameters(plan_params: dict[str, Any], steps: dict[str, Step]) -> set[str]:
    """Parameters the export fixes: those that shape a fan-out or name an input path (the exported wiring, which
    files each task reads, was decided with their values). Changing them means exporting again."""
    fixed: set[str] = set()
    for step in steps.values():
        for text in _strings(step.scatter) + _strings(step.inputs):
            fixed.update(n for n in _names(text) if n in plan_params)
    return fixed


def _location(loaded: LoadedWorkflow, keypath: tuple[str, ...]) -> Any:
    return loaded.document.value_location(keypath)


def check_exportable(loaded: LoadedWorkflow) -> None:
    """Refuse, at their place in the workflow file, what a CWL CommandLineTool cannot express (exit 2)."""
    problems = []
    for name, step in loaded.workflow.steps.items():
        if step.resources.nodes > 1:
            problems.append(Problem(_location(loaded, ("steps", name, "resources", "nodes")), f"steps.{name}.resources.nodes",
                                    f"step {name} asks for {step.resources.nodes} nodes; a CWL CommandLineTool runs on one node "
                                    "(ResourceRequirement has no nodes), so this workflow cannot be exported to CWL"))
    if problems:
        raise SpecError(problems)


def _step_tasks(plan: Plan, step_name: str, step: Step, scatter: dict[str, list[Any]]) -> list[Task]:
    """The step's tasks in CWL scatter order (flat_crossproduct: the first variable outermost, as the planner expands)."""
    tasks = [t for t in plan.tasks if t.step == step_name]
    own = list(step.scatter)

    def index(task: Task) -> int:
        values = dict(task.scatter)
        position = 0
        for var in own:
            position = position * len(scatter[var]) + scatter[var].index(values[var])
        return position

    return sorted(tasks, key=index)


def dask_settings(task: Task) -> dict[str, Any]:
    """A local Dask cluster in the step's own job, with the workers the plan sized (runtime.dask_cluster reads it)."""
    dask = task.dask
    assert dask is not None
    return {"mode": "local", "cpu_workers": dask.cpu_workers, "gpu_workers": dask.gpu_workers, "threads": dask.threads,
            "worker_memory_mib": dask.worker_memory_mib, "gpu_resource": dask.gpu_resource}


def task_resources(task: Task) -> TaskResources:
    """What the task's one job needs: a Dask step's workers run inside it (a local cluster), whatever the site's mode."""
    if task.dask is not None and task.dask.mode == "jobs":
        return with_in_allocation_workers(task.resources, DaskPlan("local", task.dask.cpu_workers, task.dask.gpu_workers, task.dask.threads,
                                                                   task.dask.worker_memory_mib, task.dask.gpu_resource))
    return task.resources


def docker_image(loaded_site: LoadedSite, container: str) -> str:
    """The image the site would run (podman/docker sites), else the tag `portaflow containers build` gives the recipe."""
    site = loaded_site.site
    if site.container.runtime in ("podman", "docker"):
        return resolve_image(site, container)
    return default_image(container, "podman")


class _Builder:
    """Builds the documents of one export from a plan (one instance per export)."""

    def __init__(self, loaded_wf: LoadedWorkflow, loaded_site: LoadedSite, plan: Plan, workdir: Path):
        self.loaded_wf, self.loaded_site, self.plan = loaded_wf, loaded_site, plan
        self.workdir = workdir
        self.workflow = loaded_wf.workflow
        self.params = plan.parameters
        self.scatter = scatter_values(self.workflow, self.params)
        self.fixed = fixed_parameters(self.params, self.workflow.steps)
        self.tasks = {name: _step_tasks(plan, name, step, self.scatter) for name, step in self.workflow.steps.items()}
        self.producer: dict[str, tuple[str, str, int]] = {}
        """Output path -> (step, output key, task index in the step's scatter order)."""
        for name, tasks in self.tasks.items():
            for i, task in enumerate(tasks):
                for key, out in task.outputs.items():
                    self.producer[out.path] = (name, key, i)
        self.wf_inputs: dict[str, dict[str, Any]] = {}
        self.job: dict[str, Any] = {}
        self.external: dict[str, str] = {}
        """External input path -> workflow input id."""
        self.input_ids: dict[str, str] = {}
        """Parameter -> its workflow input id: its name, unless a step has it (CWL ids of one document are one namespace)."""
        for param in self.params:
            wid = param
            while wid in self.workflow.steps or wid in self.input_ids.values():
                wid += "_param"
            self.input_ids[param] = wid

    def build(self) -> Export:
        tools, steps = {}, {}
        used_params: set[str] = set()
        for name, step in self.workflow.steps.items():
            tool, step_doc, params = self._step(name, step)
            tools[tool_file(name)] = tool
            steps[name] = step_doc
            used_params |= params
        for param in self.params:
            if param in used_params and param not in self.fixed:
                value = self.params[param]
                self.wf_inputs[self.input_ids[param]] = {"type": cwl_type([value]), "default": value, "label": f"parameter {param}"}
                self.job[self.input_ids[param]] = value
        outputs: dict[str, Any] = {}
        mapping: dict[str, tuple[str, str]] = {}
        for name, step in self.workflow.steps.items():
            for key, spec in step.output_specs().items():
                oid = output_id(name, key)
                if oid in mapping or oid in self.wf_inputs or oid in self.workflow.steps:
                    raise InputError(f"{self.loaded_wf.path}: steps.{name}.outputs.{key}: the CWL output id {oid!r} is taken twice; rename a step "
                                     "or an output")
                base = "Directory" if spec.directory else "File"
                outputs[oid] = {"type": {"type": "array", "items": base} if step.scatter else base, "outputSource": f"{name}/{key}",
                                "label": spec.path}
                mapping[oid] = (name, key)
        fixed_note = (" Fixed at export (they shape the fan-out or name input files; export again to change them): "
                      + ", ".join(f"{p}={self.params[p]!r}" for p in sorted(self.fixed)) + ".") if self.fixed else ""
        workflow = {
            "cwlVersion": "v1.2",
            "class": "Workflow",
            "label": self.workflow.name,
            "doc": (self.workflow.description or self.workflow.name) + f" (exported by portaflow from {Path(self.loaded_wf.path).name}, "
                   f"site {self.loaded_site.site.name}.)" + fixed_note,
            "$namespaces": {"cwltool": "http://commonwl.org/cwltool#"},
            "requirements": {
                "InlineJavascriptRequirement": {"expressionLib": [{"$include": LIBRARY}]},
                "ScatterFeatureRequirement": {},
                "StepInputExpressionRequirement": {},
                "MultipleInputFeatureRequirement": {},
            },
            "inputs": self.wf_inputs,
            "outputs": outputs,
            "steps": steps,
        }
        return Export(workflow, tools, self.job, mapping)

    def _field_spec(self, name: str, step: Step, tool_inputs: dict[str, Any], step_in: dict[str, Any], params: set[str]) -> list[Any]:
        """How the tool gets one template field (a parameter or scatter variable: a tool input; resources: constants)."""
        if name in step.scatter:
            tool_inputs[f"s_{name}"] = {"type": cwl_type(self.scatter[name]), "label": f"scatter variable {name}"}
            return ["in", f"s_{name}", type_tag(self.scatter[name][0]) if len({type_tag(v) for v in self.scatter[name]}) == 1 else "any"]
        if name in self.params:
            value = self.params[name]
            tool_inputs[f"p_{name}"] = {"type": cwl_type([value]), "label": f"parameter {name}"}
            step_in[f"p_{name}"] = {"default": value} if name in self.fixed else self.input_ids[name]
            params.add(name)
            return ["in", f"p_{name}", type_tag(value)]
        raise InputError(f"{self.loaded_wf.path}: a template field {{{name}}} that the export cannot fill")

    def _step(self, name: str, step: Step) -> tuple[dict[str, Any], dict[str, Any], set[str]]:
        tasks = self.tasks[name]
        first = tasks[0]
        own = list(step.scatter)
        tool_inputs: dict[str, Any] = {}
        step_in: dict[str, Any] = {}
        params: set[str] = set()
        spec: dict[str, Any] = {"fields": {}, "outputs": {}, "env": {}, "inputs": {}}
        scatter_inputs = [f"s_{v}" for v in own]
        for var in own:
            step_in[f"s_{var}"] = {"default": self.scatter[var]}
        # templates: outputs, env, args, command
        templates = [o.path for o in step.output_specs().values()] + list(step.env.values()) + _strings(step.args)
        if step.command is not None:
            templates.append(step.command)
        for text in templates:
            for fname in _names(text):
                if fname in spec["fields"] or fname.startswith(("inputs.", "outputs.")) or fname in RESOURCE_FIELDS:
                    continue
                spec["fields"][fname] = self._field_spec(fname, step, tool_inputs, step_in, params)
        resources = {"resources.cores": step.resources.cores, "resources.gpus": step.resources.gpus,
                     "resources.memory_mib": step.resources.memory, "resources.walltime_s": step.resources.walltime}
        for key, value in resources.items():
            spec["fields"][key] = ["const", value, "int"]
        for key, out in step.output_specs().items():
            spec["outputs"][key] = template_parts(out.path)
            spec["fields"][f"outputs.{key}"] = ["out", key]
        # inputs: files, wired from the plan
        dot = []
        for key in step.inputs:
            input_type, step_in[f"i_{key}"], scattered = self._wire_input(name, step, key, tasks)
            tool_inputs[f"i_{key}"] = {"type": input_type, "label": f"input {key}"}
            if scattered:
                dot.append(f"i_{key}")
            many = isinstance(first.inputs[key], tuple)
            spec["fields"][f"inputs.{key}"] = ["files" if many else "file", f"i_{key}"]
            spec["inputs"][key] = f"inputs.{key}"
        for env_name, value in step.env.items():
            spec["env"][env_name] = template_parts(value)
        requirements: dict[str, Any] = {}
        hints: dict[str, Any] = {}
        if step.kind == "command":
            spec["command"] = template_parts(step.command.strip())  # type: ignore[union-attr]
            base_command = ["bash", "-c"]
            argument = "$(pf_command(inputs))"
        else:
            spec["target"] = step.python or step.dask
            spec["dask"] = step.kind == "dask"
            spec["args"] = _arg_node(step.args)
            base_command = CALL_COMMAND
            argument = "$(pf_payload(inputs))"
        env_defs = {k: f'$(pf_env(inputs, {json.dumps(k)}))' for k in step.env}
        if first.dask is not None:
            spec["env"]["PORTAFLOW_DASK"] = [json.dumps(dask_settings(first), sort_keys=True, separators=(",", ":"))]
            env_defs["PORTAFLOW_DASK"] = '$(pf_env(inputs, "PORTAFLOW_DASK"))'
        requirements["InlineJavascriptRequirement"] = {"expressionLib": [{"$include": LIBRARY}, "var pf_spec = " + _js_literal(spec) + ";"]}
        res = task_resources(first)
        requirements["ResourceRequirement"] = {"coresMin": res.cores, "ramMin": res.memory_mib}
        requirements["ToolTimeLimit"] = {"timelimit": res.walltime_s}
        if env_defs:
            requirements["EnvVarRequirement"] = {"envDef": env_defs}
        if step.container:  # a hint, as in portaflow, where the site decides: `cwltool --no-container` runs the step on the host
            hints["DockerRequirement"] = {"dockerPull": docker_image(self.loaded_site, step.container)}
        if res.gpus:  # a hint: a requirement of an extension's class fails `cwltool --validate` without --enable-ext
            hints["cwltool:CUDARequirement"] = {"cudaVersionMin": CUDA_VERSION_MIN, "cudaComputeCapability": CUDA_COMPUTE_CAPABILITY,
                                                       "cudaDeviceCountMin": res.gpus}
        tool_outputs = {}
        for key, out in step.output_specs().items():
            tool_outputs[key] = {"type": "Directory" if out.directory else "File",
                                 "outputBinding": {"glob": f"$(pf_output(inputs, {json.dumps(key)}))"}}
        tool = {
            "cwlVersion": "v1.2",
            "class": "CommandLineTool",
            "label": name,
            "doc": step.description or f"step {name} of {self.workflow.name}",
            "$namespaces": {"cwltool": "http://commonwl.org/cwltool#"},
            "requirements": requirements,
            **({"hints": hints} if hints else {}),
            "baseCommand": base_command,
            "arguments": [{"valueFrom": argument}],
            "inputs": tool_inputs,
            "outputs": tool_outputs,
        }
        step_doc: dict[str, Any] = {"run": tool_file(name), "in": step_in, "out": list(tool_outputs)}
        if own:
            step_doc["scatter"] = scatter_inputs + dot
            if dot or len(own) > 1:
                step_doc["scatterMethod"] = "dotproduct" if dot else "flat_crossproduct"
        return tool, step_doc, params

    def _source(self, path: str, step: Step, key: str) -> tuple[str, int | None]:
        """(CWL source, index into it or None when the source is a single file) of one input path."""
        if path in self.producer:
            producer, key, index = self.producer[path]
            scattered = bool(self.workflow.steps[producer].scatter)
            return f"{producer}/{key}", index if scattered else None
        if path not in self.external:
            # the parameter's name when the input is just '{parameter}' (image-ms's `ms`), else one made of the path
            names = _names(step.inputs[key]) if isinstance(step.inputs[key], str) else []
            whole = isinstance(step.inputs[key], str) and len(names) == 1 and step.inputs[key] == "{" + names[0] + "}"
            wid = self.input_ids[names[0]] if whole and names[0] in self.params else "input_" + "".join(
                c if c.isalnum() else "_" for c in path).strip("_")
            while wid in self.wf_inputs or wid in self.workflow.steps or (wid in self.input_ids.values() and not whole):
                wid += "_"
            self.external[path] = wid
            where = self.workdir / path  # as portaflow reads it: relative to the work directory (an absolute path stays)
            self.wf_inputs[wid] = {"type": ["File", "Directory"], "label": f"input {path}",
                                   "doc": f"the workflow's input {path} (relative paths: to the work directory, {self.workdir})"}
            self.job[wid] = {"class": "Directory" if where.is_dir() else "File", "path": str(where)}
        return self.external[path], None

    def _wire_input(self, name: str, step: Step, key: str, tasks: list[Task]) -> tuple[Any, dict[str, Any], bool]:
        """A step input's tool type, its `in` entry, and whether the step scatters over it (dotproduct)."""
        many = isinstance(tasks[0].inputs[key], tuple)
        per_task = [[v] if isinstance(v, str) else list(v) for v in (t.inputs[key] for t in tasks)]
        kinds = set()
        sources: list[str] = []
        sizes: dict[str, int] = {}
        picks: list[list[int]] = []
        for paths in per_task:
            chosen = []
            for path in paths:
                source, index = self._source(path, step, key)
                if source not in sizes:
                    sources.append(source)
                    sizes[source] = len(self.tasks[source.split("/")[0]]) if index is not None else 1
                offset = sum(sizes[s] for s in sources[:sources.index(source)])
                chosen.append(offset + (index or 0))
                if path in self.producer:
                    producer, okey, _ = self.producer[path]
                    kinds.add("Directory" if self.workflow.steps[producer].output_specs()[okey].directory else "File")
                else:
                    kinds.add("external")
            picks.append(chosen)
        base: Any = ["File", "Directory"] if "external" in kinds or len(kinds) != 1 else kinds.pop()
        tool_type: Any = {"type": "array", "items": base} if many else base
        own = list(step.scatter)
        single = len(sources) == 1
        source = sources[0]
        total = sum(sizes.values())
        if single and not many and sizes[source] == 1:
            return tool_type, {"source": source}, False
        if single and many and all(p == list(range(total)) for p in picks):
            return tool_type, {"source": source}, False
        if single and not many and len(own) == 1 and [p[0] for p in picks] == list(range(total)) and len(tasks) == total:
            return tool_type, {"source": source}, True
        table = [p if many else p[0] for p in picks]
        expression = ("${ return pf_pick(self, inputs, " + _js_literal([f"s_{v}" for v in own]) + ", "
                      + _js_literal([self.scatter[v] for v in own]) + ", " + _js_literal(table) + "); }")
        return tool_type, {"source": sources, "linkMerge": "merge_flattened", "valueFrom": expression}, False


def _js_literal(value: Any) -> str:
    """JSON as a JavaScript literal that CWL's expression scanner reads as plain text: characters that CWL or the
    scanner could take for syntax inside strings (`$`, braces, parentheses, backslash escapes kept as escapes) and
    everything beyond ASCII are written as \\u escapes."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    out, in_string, escaped = [], False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            elif ch in "${}()`":
                out.append(f"\\u{ord(ch):04x}")
                continue
        elif ch == '"':
            in_string = True
        out.append(ch)
    return "".join(out)


def build(loaded_wf: LoadedWorkflow, loaded_site: LoadedSite, plan: Plan, workdir: Path) -> Export:
    """The CWL documents for `plan` (made from `loaded_wf` on `loaded_site`), as data. Input files no step makes are
    found, as portaflow finds them, relative to `workdir` (the CLI gives the one `portaflow run` would use). The
    driver is not imported here: it may export CWL itself (a run's RO-Crate)."""
    check_exportable(loaded_wf)
    return _Builder(loaded_wf, loaded_site, plan, Path(workdir).absolute()).build()


def _dump(data: Any) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False  # type: ignore[attr-defined]
    yaml.width = 4096
    yaml.representer.ignore_aliases = lambda data: True  # every value written out where it is used: no &id001/*id001
    stream = io.StringIO()
    yaml.dump(data, stream)
    return stream.getvalue()


def library_text() -> str:
    return importlib_resources.files("portaflow.exchange").joinpath(LIBRARY).read_text(encoding="utf-8")


def write(export: Export, out_dir: Path) -> list[Path]:
    """Write the export into `out_dir` whole or not at all: into a temporary folder beside it, then renamed.

    `out_dir` may be absent, empty, or an earlier export (it has workflow.cwl), which is replaced; anything else is
    refused (InputError), so an export never mixes with or removes someone's files."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / WORKFLOW_FILE).is_file())):
        raise InputError(f"-o {out_dir}: exists and is not an empty folder or an earlier CWL export (no {WORKFLOW_FILE}); "
                         "choose another folder")
    parent = out_dir.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"-o {out_dir}: cannot create {parent}: {exc.strerror}") from None
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=parent))
    try:
        files = {WORKFLOW_FILE: _dump(export.workflow), JOB_FILE: _dump(export.job), LIBRARY: library_text()}
        files.update({name: _dump(tool) for name, tool in export.tools.items()})
        for name, text in files.items():
            (tmp / name).write_text(("#!/usr/bin/env cwl-runner\n" if name.endswith(".cwl") else "") + text, encoding="utf-8")
        os.chmod(tmp, 0o755)
        old = None
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=parent))
            out_dir.rename(old / "export")
        tmp.rename(out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out_dir / name for name in sorted(files)]


CWLTOOL_NAME = re.compile(r"^[\w.+\-\u2600-\u26FF\U0001f600-\U0001f64f]+$")
"""File names cwltool accepts without --relax-path-checks (its ACCEPTLIST_RE)."""


def names_needing_relaxed_checks(plan: Plan) -> list[str]:
    """The plan's file names (inputs and outputs) that cwltool refuses unless run with --relax-path-checks."""
    names = {path.rstrip("/").rsplit("/", 1)[-1] for task in plan.tasks for path in (*task.input_paths(), *task.output_paths())}
    return sorted(n for n in names if n and not CWLTOOL_NAME.match(n))


def export_cwl(loaded_wf: LoadedWorkflow, loaded_site: LoadedSite, plan: Plan, out_dir: Path, workdir: Path) -> list[Path]:
    """Export and write; return the files written (workflow.cwl, job.yml, one step-<name>.cwl per step, the JS library)."""
    export = build(loaded_wf, loaded_site, plan, workdir)
    odd = names_needing_relaxed_checks(plan)
    if odd:
        log.warning("file names such as %s have characters cwltool refuses by default: run the export with cwltool --relax-path-checks",
                    ", ".join(repr(n) for n in odd[:3]))
    files = write(export, out_dir)
    log.info("CWL export of %s (%d steps) in %s", plan.workflow, len(export.tools), out_dir)
    return files


def export_for_run(loaded_site: LoadedSite, plan: Plan, out_dir: Path, workdir: Path) -> Path | None:
    """The CWL export of the workflow a run ran, written into `out_dir` (the run directory's `cwl/`), for its RO-Crate.
    Returns the folder, or None where there is nothing to export: a plan made in code (no workflow
    file), or a run of an imported CWL document (the document itself is in the crate).

    Why here and at crate-writing time: the export is pure (the workflow file, the plan, the site profile), so making
    it costs milliseconds and no run pays for a separate `portaflow export cwl`. The workflow file is read again from
    `plan.source` (what `driver.load_plan` made the plan from; presets and --param live in the plan's parameters). What
    CWL cannot say (multi-node steps) raises SpecError, as `export cwl` does."""
    if plan.source is None or is_cwl(plan.source):
        return None
    write(build(load_workflow(plan.source), loaded_site, plan, workdir), out_dir)
    return out_dir


def scatter_order(plan: Plan, loaded_wf: LoadedWorkflow, step_name: str) -> list[Task]:
    """A step's tasks in the order of its exported outputs' arrays (the order cwltool returns them in)."""
    workflow = loaded_wf.workflow
    return _step_tasks(plan, step_name, workflow.steps[step_name], scatter_values(workflow, plan.parameters))


__all__ = ["Export", "build", "export_cwl", "export_for_run", "scatter_order", "write"]
