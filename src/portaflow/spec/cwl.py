"""CWL v1.2 documents as portaflow workflows: one task per top-level Workflow step, cwltool inside each task.

Why this shape: CWL's semantics (expressions, InitialWorkDir, glob, secondary files, valueFrom, `when`, scatter,
subworkflows) belong to cwltool, the reference runner; portaflow adds what cwltool lacks: choosing a site's partition
from each step's ResourceRequirement, checking its limits before anything is submitted, and running the steps as jobs
there through either engine. So the document is loaded and validated by cwltool here (its schema-salad errors carry
file:line:column), and translated into a portaflow `Workflow` whose steps are shell commands running
`python3 -m portaflow.runtime.cwlstep` (runtime/cwlstep.py): each runs cwltool's own `--single-step` machinery for one
step, with an input object built from the job and the upstream tasks' output objects, and a last task collects the
workflow's output object as cwltool would. A CommandLineTool (or ExpressionTool) document is one task.

Data-dependent fan-out (a scatter over an upstream step's output array) cannot be planned ahead, so a scattered
step or a subworkflow is one task that cwltool expands inside; its request is the largest of its tools'.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from portaflow.errors import InputError, Location, Problem, SpecError
from portaflow.spec.loading import LoadedWorkflow
from portaflow.spec.site import ContainerSettings
from portaflow.spec.workflow import Output, Resources, Step, Workflow
from portaflow.spec.yamlfile import read_yaml

log = logging.getLogger(__name__)

CWL_SUFFIX = ".cwl"
STEP_ENTRY = "python3 -m portaflow.runtime.cwlstep"
"""How a CWL task runs: the step's job is portaflow's, the step's semantics cwltool's."""
CWL_DEFAULT_RAM_MIB = 256
"""CWL's own default `ramMin` (ResourceRequirement, v1.2)."""
CWLTOOL_OVERHEAD_MIB = 256
"""Memory the task asks for beyond the tool's: the task's own Python process runs cwltool (about 150-200 MiB)."""
CUDA_REQUIREMENT = "http://commonwl.org/cwltool#CUDARequirement"
OUTPUT_DIR = "output"
OUTPUT_OBJECT = "output.json"
"""The run's CWL outputs in the work directory: the files (as `cwltool --outdir` would hold them) and the output object."""


class CwlUnsupported(InputError):
    """A document needing a requirement cwltool does not support: exit 33, as cwl-runner reports it."""

    exit_code = 33


def is_cwl(path: str | Path) -> bool:
    """A CWL document, by its suffix (a CWL document is YAML or JSON, and only the suffix tells it from portaflow's YAML)."""
    return str(path).partition("#")[0].endswith(CWL_SUFFIX)


def container_flags(settings: ContainerSettings) -> list[str]:
    """cwltool's options for the site's container runtime: a DockerRequirement runs in the site's runtime (Apptainer
    converts the docker image), and on a site without one the tool runs on the host (cwltool --no-container)."""
    return ["--enable-ext", *{"none": ["--no-container"], "podman": ["--podman"], "docker": [], "apptainer": ["--singularity"],
            "singularity": ["--singularity"]}[settings.runtime]]


def _load_tool(path: Path, fragment: str = "") -> Any:
    """cwltool's Process for the document (`fragment`: the process of a packed `$graph` document, 'main'); SpecError
    (file:line:col from schema-salad) on an invalid one."""
    from cwltool.context import LoadingContext
    from cwltool.errors import UnsupportedRequirement
    from cwltool.load_tool import load_tool
    from cwltool.workflow import default_make_tool
    from schema_salad.exceptions import ValidationException

    if not path.is_file():
        raise InputError(f"{path}: no such CWL document")
    enable_extensions()
    cwl_logger = logging.getLogger("cwltool")
    level = cwl_logger.level
    cwl_logger.setLevel(max(level, logging.WARNING))  # cwltool's 'Resolved ... to ...' is not portaflow's news
    cwl_logger.propagate = False  # cwltool's own handler prints its warnings; once is enough
    try:
        return load_tool(str(path.resolve()) + (f"#{fragment}" if fragment else ""), LoadingContext({"construct_tool_object": default_make_tool, "relax_path_checks": True}))
    except UnsupportedRequirement as exc:
        raise CwlUnsupported(f"{path}: {exc}") from None
    except ValidationException as exc:
        raise SpecError([Problem(Location(str(path)), "", f"invalid CWL document:\n{_relative_locations(str(exc))}")]) from None
    except (OSError, ValueError, RuntimeError) as exc:  # an unreadable import, a bad $graph: cwltool's message says which
        raise InputError(f"{path}: cannot load the CWL document: {exc}") from None
    finally:
        cwl_logger.setLevel(level)


def enable_extensions() -> None:
    """cwltool's extensions (cwltool:CUDARequirement as a requirement, not only a hint) in its schema, as
    `cwltool --enable-ext` loads them; the tasks pass --enable-ext (CWL_FLAGS) so that they read documents alike."""
    import argparse

    from cwltool.main import setup_schema

    setup_schema(argparse.Namespace(enable_ext=True), None)


def _relative_locations(text: str) -> str:
    """schema-salad's messages as 'file:line:col: message' with the file as the user may have typed it (cwd-relative)."""
    cwd = str(Path.cwd()) + "/"
    return "\n".join(line.replace(cwd, "") for line in text.splitlines())


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def _number(tool: Any, req: dict[str, Any] | None, keys: tuple[str, ...], what: str) -> float | None:
    """The first of `keys` set in a requirement as a number; an expression (known only when the step runs) is noted and
    left to cwltool, the task then asking for the default."""
    if not req:
        return None
    for key in keys:
        value = req.get(key)
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            log.warning("%s: %s %s is an expression (%s); the task asks the site for the default instead",
                        tool.tool.get("id", "?"), what, key, value)
            return None
    return None


def _request(tool: Any) -> tuple[int, int, int, int | None]:
    """(cores, RAM MiB, GPUs, time limit s or None) one process of `tool` needs: for a Workflow the largest of its steps
    (cwltool runs a task's jobs one after the other)."""
    if tool.tool.get("class") == "Workflow":
        parts = [_request(step.embedded_tool) for step in tool.steps]
        limits = [p[3] for p in parts if p[3]]
        return (max((p[0] for p in parts), default=1), max((p[1] for p in parts), default=CWL_DEFAULT_RAM_MIB),
                max((p[2] for p in parts), default=0), max(limits) if limits else None)
    resources, _ = tool.get_requirement("ResourceRequirement")
    cores = _number(tool, resources, ("coresMin", "coresMax"), "cores")
    ram = _number(tool, resources, ("ramMin", "ramMax"), "ram")
    cuda, _ = tool.get_requirement(CUDA_REQUIREMENT)
    gpus = (_number(tool, cuda, ("cudaDeviceCountMin", "cudaDeviceCountMax"), "GPUs") or 1) if cuda else 0
    timelimit, _ = tool.get_requirement("ToolTimeLimit")
    seconds = _number(tool, timelimit, ("timelimit",), "time limit")
    return (max(1, math.ceil(cores or 1)), math.ceil(ram or CWL_DEFAULT_RAM_MIB), math.ceil(gpus), math.ceil(seconds) if seconds else None)


def _resources(tool: Any) -> Resources:
    cores, ram, gpus, seconds = _request(tool)
    values: dict[str, Any] = {"cores": cores, "memory": max(ram, CWL_DEFAULT_RAM_MIB) + CWLTOOL_OVERHEAD_MIB, "gpus": gpus}
    if seconds:
        values["walltime"] = f"{seconds}s"
    return Resources.model_validate(values)


def _name(text: str, taken: set[str]) -> str:
    """A portaflow step name (letters, digits, '_', starting with a letter) for a CWL id, unique among `taken`."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text) or "step"
    if not name[0].isalpha():
        name = "s_" + name
    base, n = name, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def step_names(tool: Any) -> dict[str, str]:
    """CWL step id -> portaflow step name (and task directory cwl/<name>/), for a loaded Workflow: the one rule the loader
    and the tasks (runtime/cwlstep.py) share."""
    taken: set[str] = set()
    return {step.id: _name(step.id.rpartition("#")[2].rpartition("/")[2], taken) for step in tool.steps}


def _command(mode: str, payload: dict[str, Any], fields: list[str]) -> str:
    """The task's shell command: the entry point, portaflow's own path fields, and the payload as one quoted JSON word
    (its braces doubled: they are literal text in portaflow's command templates)."""
    data = shlex.quote(json.dumps(payload, sort_keys=True, separators=(",", ":")))
    return " ".join([STEP_ENTRY, mode, *fields, data.replace("{", "{{").replace("}", "}}")])


def _job_files(job: Path | None) -> list[str]:
    """Local files the job names (File `location`/`path`, relative to the job's directory): inputs of every task, so
    that a changed input file reruns the workflow, as a changed portaflow input does."""
    if job is None:
        return []
    found: list[str] = []

    def visit(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("class") == "File":
                ref = value.get("location") or value.get("path")
                local = None
                if isinstance(ref, str):  # file:// or a path (relative to the job's directory); other schemes are cwltool's
                    local = _local_path(ref) if ref.startswith("file://") else None if "://" in ref else job.parent / ref
                if local is not None and local.is_file():
                    found.append(str(local.resolve()))
            for child in value.values():
                visit(child)
        elif isinstance(value, list):
            for child in value:
                visit(child)

    from portaflow.spec.yamlfile import to_plain

    visit(to_plain(read_yaml(job).data))
    return sorted(dict.fromkeys(found))


def _documents(tool: Any) -> list[str]:
    """The local files a document is made of (itself and every `run:` file it names, recursively)."""
    out: list[str] = []
    path = _local_path(str(tool.tool.get("id", "")).partition("#")[0])
    if path is not None and path.is_file():
        out.append(str(path))
    for step in getattr(tool, "steps", []):
        out.extend(_documents(step.embedded_tool))
    return list(dict.fromkeys(out))


def load_cwl(path: str | Path, job: str | Path | None = None, container: ContainerSettings | None = None) -> LoadedWorkflow:
    """A CWL CommandLineTool, ExpressionTool or Workflow document as a portaflow workflow (InputError, exit 2, with the
    document's file:line:col on an invalid one; CwlUnsupported, exit 33, for an unsupported requirement).

    `job`: the CWL input object (YAML or JSON), read by each task with cwltool; `container`: the site's container
    settings, which decide how cwltool runs a DockerRequirement (None: not known yet, as for `validate`)."""
    text, _, fragment = str(path).partition("#")  # 'packed.cwl#main': one process of a $graph document
    path = Path(text)
    tool = _load_tool(path, fragment)
    document_ref = str(path.resolve()) + (f"#{fragment}" if fragment else "")
    document = read_yaml(path)  # for located plan errors ('steps.NAME' is found in a CWL Workflow too)
    job_path = Path(job).resolve() if job else None
    if job_path is not None and not job_path.is_file():
        raise InputError(f"{job}: no such CWL input object (job) file")
    settings = container or ContainerSettings()
    flags = container_flags(settings)
    if settings.runtime == "none" and _needs_docker(tool):
        log.warning("%s: the site has no container runtime: a DockerRequirement given as a hint is ignored (the tool runs on "
                    "the host), one under requirements is refused when its step runs (cwltool --no-container)", path)
    env = {"CWL_SINGULARITY_CACHE": settings.cache_dir} if settings.cache_dir and settings.runtime in ("apptainer", "singularity") else {}
    externals = {"document": str(path.resolve())}
    if job_path is not None:
        externals["job"] = str(job_path)
    for n, extra in enumerate([*_documents(tool)[1:], *_job_files(job_path)]):
        externals[f"file{n}"] = extra
    base = {"document": document_ref, "job": str(job_path) if job_path else None, "flags": flags}
    steps: dict[str, Step] = {}
    name = _name(path.stem, set())
    if tool.tool.get("class") != "Workflow":
        steps[_name(path.stem, set())] = Step(
            description=f"CWL {tool.tool.get('class')} {path.name}",
            command=_command("tool", base, ["{outputs.object}", "{outputs.outdir}"]),
            inputs=externals,
            outputs={"object": Output(path=OUTPUT_OBJECT, compare="exists"), "outdir": Output(path=OUTPUT_DIR, directory=True)},
            resources=_resources(tool), env=env)
        return LoadedWorkflow(Workflow(name=name, description=f"CWL {path.name}", steps=steps), document)
    names = step_names(tool)
    taken = set(names.values())
    objects = {names[s.id]: f"cwl/{names[s.id]}/outputs.json" for s in tool.steps}
    values = _job_values(tool, job_path)
    for step in tool.steps:
        own = names[step.id]
        upstream = sorted({names[src.rpartition("/")[0]] for inp in step.tool["inputs"] for src in _sources(inp)
                           if src.rpartition("/")[0] in names})
        payload = {**base, "step": step_ref(tool.tool["id"], step.id), "upstream": [objects[u] for u in upstream]}
        after = {f"after_{u}": objects[u] for u in upstream}
        elements = scatter_elements(step, tool, values)
        if elements is None:
            steps[own] = Step(
                description=f"CWL step {step.id.rpartition('#')[2]}",
                command=_command("step", payload, ["{outputs.object}", "{outputs.outdir}"]),
                inputs={**externals, **after},
                outputs={"object": Output(path=objects[own], compare="exists"), "outdir": Output(path=f"cwl/{own}/out", directory=True)},
                resources=_resources(step.embedded_tool), env=env)
            continue
        # A scatter over values the job gives: one task per element, then one that gathers their outputs in order.
        element_step = _name(f"{own}_element", taken)
        var = f"{own}_n"  # a scatter variable of this step alone (portaflow's variables are the workflow's)
        element_object = f"cwl/{own}/scatter/{{{var}}}/outputs.json"
        steps[element_step] = Step(
            description=f"CWL step {step.id.rpartition('#')[2]}, one element of its scatter",
            command=_command("step", {**payload, "elements": elements}, ["--element", f"{{{var}}}", "{outputs.object}", "{outputs.outdir}"]),
            scatter={var: list(range(elements))},
            inputs={**externals, **after},
            outputs={"object": Output(path=element_object, compare="exists"),
                     "outdir": Output(path=f"cwl/{own}/scatter/{{{var}}}/out", directory=True)},
            resources=_resources(step.embedded_tool), env=env)
        parts = [element_object.replace(f"{{{var}}}", str(i)) for i in range(elements)]
        steps[own] = Step(
            description=f"CWL step {step.id.rpartition('#')[2]}: its scatter's outputs gathered",
            command=_command("gather", {"elements": parts}, ["{outputs.object}", "{outputs.outdir}"]),
            inputs={f"element_{i}": part for i, part in enumerate(parts)},
            outputs={"object": Output(path=objects[own], compare="exists"), "outdir": Output(path=f"cwl/{own}/out", directory=True)},
            resources=Resources(cores=1, memory=f"{CWLTOOL_OVERHEAD_MIB}MiB"))
    collect = _name("cwl_outputs", taken)
    steps[collect] = Step(
        description="the workflow's CWL output object, its files copied into output/",
        command=_command("collect", {**base, "upstream": sorted(objects.values())}, ["{outputs.object}", "{outputs.outdir}"]),
        inputs={**externals, **{f"after_{u}": objects[u] for u in sorted(objects)}},
        outputs={"object": Output(path=OUTPUT_OBJECT, compare="exists"), "outdir": Output(path=OUTPUT_DIR, directory=True)},
        resources=Resources(cores=1, memory=f"{CWL_DEFAULT_RAM_MIB + CWLTOOL_OVERHEAD_MIB}MiB"))
    return LoadedWorkflow(Workflow(name=name, description=f"CWL workflow {path.name}", steps=steps), document)


SPLIT_SCATTER = (None, "dotproduct", "flat_crossproduct")
"""The scatter methods whose elements become tasks of their own: each element's outputs are one entry of the step's
output arrays, in element order. A nested_crossproduct (arrays of arrays) runs as one task."""


def _job_values(tool: Any, job: Path | None) -> dict[str, Any]:
    """The Workflow's input values known when the plan is made: the job's, else the inputs' defaults (by input id)."""
    from cwltool.process import shortname

    from portaflow.spec.yamlfile import to_plain

    given = to_plain(read_yaml(job).data) if job is not None else {}
    given = given if isinstance(given, dict) else {}
    out = {}
    for inp in tool.tool["inputs"]:
        key = shortname(inp["id"])
        if key in given:
            out[inp["id"]] = given[key]
        elif "default" in inp:
            out[inp["id"]] = inp["default"]
    return out


def scatter_elements(step: Any, tool: Any, values: dict[str, Any]) -> int | None:
    """How many elements a top-level step's scatter has, where each becomes a task of its own; None where the step runs
    as one task. Split: a dotproduct or flat_crossproduct whose every scattered input has exactly one source, a
    Workflow input whose value (the job's, or its default) is a list known now. Not split: a scatter over an upstream
    step's output (its length is known only when that step has run), a nested_crossproduct, a dotproduct of lists of
    different lengths (cwltool's own error, in one task), an empty scatter."""
    scattered = step.tool.get("scatter")
    if not scattered or step.tool.get("scatterMethod") not in SPLIT_SCATTER:
        return None
    scattered = [scattered] if isinstance(scattered, str) else list(scattered)
    by_id = {inp["id"]: inp for inp in step.tool["inputs"]}
    lengths = []
    for key in scattered:
        source = by_id.get(key, {}).get("source")  # one source, not a list of them (linkMerge would nest it)
        if not isinstance(source, str) or source not in values or not isinstance(values[source], list):
            return None
        lengths.append(len(values[source]))
    if step.tool.get("scatterMethod") == "flat_crossproduct":
        count = math.prod(lengths)
    elif len(set(lengths)) == 1:
        count = lengths[0]
    else:
        return None
    return count or None


def step_ref(workflow_id: str, step_id: str) -> str:
    """A step's id as `cwltool --single-step` takes it: relative to its workflow's ('wf.cwl#step' -> 'step', a packed
    'wf.cwl#main/step' -> 'step'); `step_id_of` is the inverse."""
    return step_id[len(workflow_id) + 1:] if step_id.startswith((workflow_id + "#", workflow_id + "/")) else step_id.rpartition("#")[2]


def step_id_of(workflow_id: str, ref: str) -> str:
    """The full step id from `step_ref`'s text, as cwltool's `choose_step` joins them."""
    return workflow_id + ("/" if "#" in workflow_id else "#") + ref


def _sources(inp: dict[str, Any]) -> list[str]:
    src = inp.get("source")
    return [] if src is None else [src] if isinstance(src, str) else list(src)


def _needs_docker(tool: Any) -> bool:
    if tool.get_requirement("DockerRequirement")[0]:
        return True
    return any(_needs_docker(step.embedded_tool) for step in getattr(tool, "steps", []))
