"""`python3 -m portaflow.runtime.cwlstep tool|step|gather|collect OBJECT OUTDIR '<json>'`: one task of an imported CWL
document.

Everything CWL means is done by cwltool's own code here; this module only wires portaflow's tasks together:

- `tool`: a CommandLineTool/ExpressionTool document with its job, run by `cwltool.main.main` (outputs in OUTDIR);
- `step`: one top-level step of a Workflow, run by `cwltool --single-step` (scatter, `when`, valueFrom, subworkflows
  are its business). Its input object is built as cwltool's WorkflowJob builds it (`object_from_state`: sources,
  linkMerge, defaults) from the job and the upstream tasks' output objects; `pickValue` is left to the step itself.
  `--element N`: one element of its scatter (the loader splits a scatter over values the job gives);
- `gather`: a split scatter's output object, its elements' outputs joined in order;
- `collect`: the workflow's output object (`object_from_state` over `outputSource`, as cwltool's WorkflowJob does),
  its files copied into OUTDIR with cwltool's `relocateOutputs`, as `cwltool --outdir` leaves them.

Each writes its CWL output object as JSON to OBJECT. Exit status: 0, 1 (permanentFail), 33 (unsupported requirement),
as cwltool's.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("portaflow.runtime.cwlstep")  # not __name__: run with -m, that is "__main__"

UNSUPPORTED = 33


def _cwltool_main(argv: list[str]) -> int:
    """cwltool's command line, in this process (one interpreter start less per task)."""
    from cwltool.main import main

    argv = ["--disable-color", *argv]
    log.info("cwltool %s", " ".join(argv))
    logging.getLogger("cwltool").propagate = False  # cwltool's own handler writes its records to the log (stderr), once
    return int(main(argsl=argv, stdout=sys.stderr))


def _finish(rc: int, summary: Path, obj: Path) -> int:
    if rc != 0:
        return rc
    if not summary.exists():
        log.error("cwltool finished without an output object")
        return 1
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_text(summary.read_text())
    return 0


def run_tool(payload: dict[str, Any], obj: Path, outdir: Path) -> int:
    """A whole CommandLineTool/ExpressionTool document: cwltool, with the site's container flags."""
    outdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="portaflow-cwl-") as tmp:
        summary = Path(tmp) / "out.json"
        argv = [*payload["flags"], "--outdir", str(outdir.resolve()), "--write-summary", str(summary), payload["document"]]
        if payload.get("job"):
            argv.append(payload["job"])
        return _finish(_cwltool_main(argv), summary, obj)


def _loaded(payload: dict[str, Any]) -> tuple[Any, dict[str, Any], Any, str]:
    """The workflow (cwltool's Process) and its job object as `cwltool` reads them: locations made absolute against the
    job's directory, defaults filled in."""
    from cwltool.argparser import arg_parser
    from cwltool.context import LoadingContext
    from cwltool.load_tool import fetch_document, make_tool, resolve_and_validate_document
    from cwltool.main import init_job_order, load_job_order
    from cwltool.workflow import default_make_tool

    from portaflow.spec.cwl import enable_extensions

    enable_extensions()
    # load_tool's three steps, as cwltool's main takes them, keeping the loading context that holds the document's loader
    loading, workflowobj, uri = fetch_document(payload["document"],
                                               LoadingContext({"construct_tool_object": default_make_tool, "relax_path_checks": True}))
    loading, uri = resolve_and_validate_document(loading, workflowobj, uri)
    tool = make_tool(uri, loading)
    args = arg_parser().parse_args([payload["document"], *([payload["job"]] if payload.get("job") else [])])
    job, basedir, jobloader = load_job_order(args, sys.stdin, None, [], tool.tool["id"])
    if job is None:
        job = {}
    job = init_job_order(job, args, tool, jobloader, io.StringIO(), input_basedir=basedir)
    return tool, job, loading, basedir


def _state(tool: Any, job: dict[str, Any], upstream: list[str]) -> dict[str, Any]:
    """cwltool's WorkflowJob state: the workflow's inputs from the job (or their defaults), and each finished upstream
    step's outputs from its task's output object."""
    from cwltool.process import shortname
    from cwltool.workflow_job import WorkflowStateItem

    state: dict[str, Any] = {}
    for inp in tool.tool["inputs"]:
        key = shortname(inp["id"])
        if key in job:
            state[inp["id"]] = WorkflowStateItem(inp, job[key], "success")
        elif "default" in inp:
            state[inp["id"]] = WorkflowStateItem(inp, inp["default"], "success")
    by_object = {str(Path(p).resolve()) for p in upstream}
    for step in tool.steps:
        for out in step.tool["outputs"]:
            state.setdefault(out["id"], None)
    for path in by_object:
        values = json.loads(Path(path).read_text())
        step_dir = Path(path).parent.name
        for step in tool.steps:
            if _step_dir(step, tool) != step_dir:
                continue
            for out in step.tool["outputs"]:
                state[out["id"]] = WorkflowStateItem(out, values.get(shortname(out["id"])), "success")
    return state


def _step_dir(step: Any, tool: Any) -> str:
    """The task directory name the loader gave this step (cwl/<name>/): recomputed the same way."""
    from portaflow.spec.cwl import step_names  # the one rule for names, shared with the loader

    return step_names(tool)[step.id]


def run_step(payload: dict[str, Any], obj: Path, outdir: Path, element: int | None = None) -> int:
    """One top-level Workflow step, as `cwltool --single-step` runs it, its input object from the job and upstream objects;
    with `element`, one element of its scatter (`one_element`).

    Why not `cwltool --single-step` itself: it declares each of the step's inputs `Any`, which excludes null, so a step
    fed by a skipped (`when`) step or an in-port with only `valueFrom` is refused. The step is extracted by the same
    cwltool function (`subgraph.get_step`), its inputs declared `[null, Any]`, and run by cwltool's executor with the
    runtime context cwltool's command line makes from the same flags."""
    from cwltool.argparser import arg_parser
    from cwltool.context import RuntimeContext
    from cwltool.errors import WorkflowException
    from cwltool.executors import SingleJobExecutor
    from cwltool.load_tool import make_tool
    from cwltool.secrets import SecretStore
    from cwltool.subgraph import get_step
    from cwltool.utils import visit_class
    from cwltool.workflow_job import object_from_state
    from schema_salad.sourceline import cmap

    from portaflow.spec.cwl import step_id_of

    tool, job, loading, basedir = _loaded(payload)
    wanted = step_id_of(tool.tool["id"], payload["step"])
    step = next(s for s in tool.steps if s.id == wanted)
    multiple = bool(tool.get_requirement("MultipleInputFeatureRequirement")[0])
    # pickValue stays with the step: cwltool applies it there (applied twice, first_non_null would pick inside a list)
    params = [{k: v for k, v in inp.items() if k != "pickValue"} for inp in step.tool["inputs"]]
    try:
        inputs = object_from_state(_state(tool, job, payload["upstream"]), params, True, multiple, "source")
    except WorkflowException as exc:
        log.error("step %s: %s", payload["step"], exc)
        return 1
    if inputs is None:
        log.error("step %s: an upstream output it needs is missing", payload["step"])
        return 1
    if element is not None:
        try:
            inputs = one_element(step.tool, inputs, element, payload.get("elements"))
        except ValueError as exc:
            log.error("step %s: %s", payload["step"], exc)
            return 1
    extracted = get_step(tool, step.id, loading)
    for inp in extracted["inputs"]:
        inp["type"] = ["null", "Any"]
    loading.loader.idx[extracted["id"]] = cmap(extracted)
    cwl_logger = logging.getLogger("cwltool")
    level = cwl_logger.level
    cwl_logger.setLevel(logging.ERROR)  # the checker's '[null, Any] may be incompatible' is about the wrapper, not the document
    try:
        process = make_tool(extracted["id"], loading)
    finally:
        cwl_logger.setLevel(level)
    outdir.mkdir(parents=True, exist_ok=True)
    args = arg_parser().parse_args([*payload["flags"], "--outdir", str(outdir.resolve()), payload["document"]])
    runtime = RuntimeContext(vars(args))
    runtime.secret_store = SecretStore()
    runtime.basedir = basedir
    log.info("cwltool step %s (%s) with %s", payload["step"], " ".join(payload["flags"]), json.dumps(inputs, default=str)[:2000])
    out, status = SingleJobExecutor()(process, inputs, runtime)
    if status != "success" or out is None:
        log.error("step %s: cwltool finished with status %s", payload["step"], status)
        return 1
    visit_class(out, ("File", "Directory"), location_to_path)
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_text(json.dumps(out, indent=4, ensure_ascii=False, default=str))
    return 0


def one_element(step: dict[str, Any], inputs: dict[str, Any], element: int, expected: int | None = None) -> dict[str, Any]:
    """The step's input object with each scattered input cut down to the one value of `element` (a one-element list):
    cwltool then runs the step's scatter over that element alone (valueFrom and `when` per element, as the spec has them),
    and its outputs are one-element arrays, which `gather` joins in element order. dotproduct: the element-th value of
    each input; flat_crossproduct: the first input outermost, as cwltool orders the flat arrays. `expected`: the number
    of elements the plan made tasks for; a scatter of another size (the values are not what the loader read) is an
    error rather than elements silently left out."""
    from cwltool.process import shortname

    scattered = step["scatter"] if isinstance(step["scatter"], list) else [step["scatter"]]
    keys = [shortname(key) for key in scattered]
    lists = [inputs.get(key) for key in keys]
    if not all(isinstance(value, list) for value in lists):
        raise ValueError("a scattered input is not a list")
    cut = dict(inputs)
    flat = step.get("scatterMethod") == "flat_crossproduct"
    if not flat and len({len(value) for value in lists}) > 1:
        raise ValueError("a dotproduct of lists of unequal lengths")
    size = math.prod(len(value) for value in lists) if flat else min(len(value) for value in lists)
    if expected is not None and size != expected:
        raise ValueError(f"its scatter has {size} elements here, {expected} when the plan was made")
    if flat:
        if not 0 <= element < size:
            raise ValueError(f"element {element} of a scatter of {size}")
        for key, value in reversed(list(zip(keys, lists, strict=True))):
            element, index = divmod(element, len(value))
            cut[key] = [value[index]]
        return cut
    if any(not 0 <= element < len(value) for value in lists):
        raise ValueError(f"element {element} of a scatter of {min(len(value) for value in lists)}")
    for key, value in zip(keys, lists, strict=True):
        cut[key] = [value[element]]
    return cut


def gather(payload: dict[str, Any], obj: Path, outdir: Path) -> int:
    """A scattered step's output object from its elements' (`payload["elements"]`, in element order): each output the
    concatenation of the elements' one-element arrays, the array cwltool's scatter makes."""
    out: dict[str, Any] = {}
    for path in payload["elements"]:
        for key, value in json.loads(Path(path).read_text()).items():
            if not isinstance(value, list):
                log.error("%s: output %s is not an array (a scatter's outputs are)", path, key)
                return 1
            out.setdefault(key, []).extend(value)
    outdir.mkdir(parents=True, exist_ok=True)
    obj.parent.mkdir(parents=True, exist_ok=True)
    obj.write_text(json.dumps(out, indent=4, ensure_ascii=False, default=str))
    return 0


def collect(payload: dict[str, Any], obj: Path, outdir: Path) -> int:
    """The workflow's output object, as cwltool's WorkflowJob and `--outdir` make it."""
    import functools

    from cwltool.errors import WorkflowException
    from cwltool.mutation import MutationManager
    from cwltool.process import relocateOutputs
    from cwltool.stdfsaccess import StdFsAccess
    from cwltool.utils import visit_class
    from cwltool.workflow_job import object_from_state

    tool, job, _, _ = _loaded(payload)
    multiple = bool(tool.get_requirement("MultipleInputFeatureRequirement")[0])
    try:
        out = object_from_state(_state(tool, job, payload["upstream"]), tool.tool["outputs"], True, multiple, "outputSource",
                                incomplete=True)
    except WorkflowException as exc:
        log.error("cannot collect the workflow's outputs: %s", exc)
        return 1
    outdir.mkdir(parents=True, exist_ok=True)
    sources = {str(Path(p).resolve().parent / "out") for p in payload["upstream"]}
    out = relocateOutputs(out or {}, str(outdir.resolve()), sources, "copy", StdFsAccess(""), compute_checksum=True)
    visit_class(out, ("File", "Directory"), functools.partial(location_to_path))
    visit_class(out, ("File",), MutationManager().unset_generation)  # as cwltool's final output object
    obj.write_text(json.dumps(out, indent=4, ensure_ascii=False, default=str))
    return 0


def location_to_path(entry: dict[str, Any]) -> None:
    """As cwltool's final output object: `path` from a file:// location, the derived fields dropped."""
    from schema_salad.ref_resolver import uri_file_path

    for key in ("path", "nameext", "nameroot", "dirname"):
        entry.pop(key, None)
    if str(entry.get("location", "")).startswith("file://"):
        entry["path"] = uri_file_path(entry["location"])


MODES = {"tool": run_tool, "step": run_step, "gather": gather, "collect": collect}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m portaflow.runtime.cwlstep")
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--element", type=int, help="step: run only this element of its scatter (`one_element`)")
    parser.add_argument("object", type=Path, help="where the CWL output object goes (JSON)")
    parser.add_argument("outdir", type=Path, help="where output files go")
    parser.add_argument("payload", help="JSON: document, job, flags, step, upstream")
    args = parser.parse_args(argv)
    payload = json.loads(args.payload)
    try:
        if args.element is not None:
            return run_step(payload, args.object, args.outdir, args.element)
        return MODES[args.mode](payload, args.object, args.outdir)
    except Exception as exc:
        from cwltool.errors import UnsupportedRequirement

        if isinstance(exc, UnsupportedRequirement):
            log.error("unsupported requirement: %s", exc)
            return UNSUPPORTED
        raise


if __name__ == "__main__":
    from portaflow.runtime.call import configure_step_logging

    configure_step_logging()
    sys.exit(main())
