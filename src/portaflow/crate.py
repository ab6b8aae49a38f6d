"""A run's RO-Crate: `ro-crate-metadata.json` beside `manifest.json`, what the run did in a form other tools read.

Why: portaflow's manifest is its own format; the research infrastructures its users publish to (WorkflowHub, EOSC,
journals) read runs as Workflow Run RO-Crates. The crate follows the Provenance Run Crate profile
(https://w3id.org/ro/wfrun/provenance/0.5, which includes the Workflow Run and Process Run Crate profiles and
Workflow RO-Crate): the run directory is the crate's root; the workflow (a copy, `workflow.yaml`) is its main entity,
a ComputationalWorkflow whose steps are tools; the run is an OrganizeAction of portaflow (with the engine) whose
result is the workflow's CreateAction; each task is a CreateAction of its step's tool, with its start and end, its
scheduler job, its container image and the files it read and wrote (with their sha256), tied to the step by a
ControlAction.

Everything in the crate comes from the manifest (and the plan's structure: which step a task belongs to, which input
and output names its paths have), besides the copy of the workflow file: what the manifest does not write (an
environment variable's value, a credential), the crate does not either. Files of the work directory outside the run
directory are named by their path relative to the crate's root (`../../../results/x.json`). Nothing is fetched: the
context is named, never read.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse
from urllib.request import url2pathname

from portaflow.plan.model import Plan, Task

CRATE_FILE = "ro-crate-metadata.json"
CRATE_VERSION = "1.1"
"""The RO-Crate specification the crate follows: the one the Workflow Run Crate profiles 0.5 build on."""
PROFILES = {
    "process": "https://w3id.org/ro/wfrun/process/0.5",
    "workflow": "https://w3id.org/ro/wfrun/workflow/0.5",
    "provenance": "https://w3id.org/ro/wfrun/provenance/0.5",
    "wroc": "https://w3id.org/workflowhub/workflow-ro-crate/1.0",
}
PROFILE_NAMES = {"process": "Process Run Crate", "workflow": "Workflow Run Crate", "provenance": "Provenance Run Crate",
                 "wroc": "Workflow RO-Crate"}
WFRUN = "https://w3id.org/ro/terms/workflow-run#"
WFRUN_TERMS = {term: WFRUN + term for term in ("ContainerImage", "containerImage", "DockerImage", "SIFImage", "sha256")}
"""The workflow-run terms the crate uses, defined in the crate's own context (as the workflow-run context
https://w3id.org/ro/terms/workflow-run/context defines them) so that reading the crate needs no second document."""
FORMAL_PARAMETER_PROFILE = "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"
COMPUTATIONAL_WORKFLOW_PROFILE = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"
WORKFLOW_COPY = "workflow.yaml"
PLAN_COPY = "plan.json"
CWL_DIR = "cwl"
"""The workflow's CWL export in the run directory (exchange.cwl_export.RUN_EXPORT_DIR)."""
CWL_MAIN = "workflow.cwl"
LICENSE = "not stated: a portaflow workflow description names no license (state one before publishing this crate)"
PORTAFLOW_URL = "https://pypi.org/project/portaflow/"
ENGINE_URLS = {"parsl": "https://parsl-project.org/", "snakemake": "https://snakemake.github.io/"}
ACTION_STATUS = {
    "ran": "CompletedActionStatus", "failed": "FailedActionStatus", "not run": "FailedActionStatus",
    "pending": "ActiveActionStatus",
}
RUN_STATUS = {"succeeded": "CompletedActionStatus", "failed": "FailedActionStatus", "interrupted": "FailedActionStatus"}


def write_crate(run_dir: Path, manifest: dict[str, Any], plan: Plan, cwl_export: Path | None = None) -> Path:
    """Write `run_dir/ro-crate-metadata.json` for a run that has ended (succeeded, failed or interrupted).

    `cwl_export`: a folder holding the workflow exported as CWL (`portaflow export cwl`), when the run has one: it is
    copied into the run directory (`cwl/`, unless it is that folder) and its workflow.cwl described as the main
    workflow's abstract CWL description (`subjectOf`, as Workflow RO-Crate links a workflow to its CWL). Written to a
    temporary name and renamed: whole or absent."""
    data = crate_metadata(run_dir, manifest, plan, cwl_export)
    path = run_dir / CRATE_FILE
    tmp = path.with_name(f".{CRATE_FILE}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def crate_metadata(run_dir: Path, manifest: dict[str, Any], plan: Plan, cwl_export: Path | None = None) -> dict[str, Any]:
    """The crate's JSON-LD (see the module's docstring); copies the workflow (and its CWL export) into `run_dir`."""
    from rocrate.model import ContextEntity, Dataset, File
    from rocrate.rocrate import ROCrate

    crate = ROCrate(version=CRATE_VERSION)
    crate.metadata.extra_terms.update(WFRUN_TERMS)
    root = crate.root_dataset
    run_id = manifest["run_id"]
    status = manifest["status"]
    tools = manifest.get("tools", {})
    for key, uri in PROFILES.items():
        root.append_to("conformsTo", crate.add(ContextEntity(crate, uri, properties={
            "@type": "CreativeWork", "name": PROFILE_NAMES[key], "version": uri.rsplit("/", 1)[1]})))
    root["name"] = f"portaflow run {run_id} of workflow {manifest['workflow']}"
    root["description"] = (f"Run {run_id} of workflow {manifest['workflow']} on site {manifest['site']} ({manifest['scheduler']}) "
                           f"with {manifest['engine']}: {status}. The run's record is manifest.json.")
    root["datePublished"] = _when(manifest.get("finished") or manifest["started"])
    root["license"] = LICENSE
    crate.metadata["conformsTo"] = [{"@id": crate.metadata.profile}, {"@id": PROFILES["wroc"]}]

    def add(entity_id: str, props: dict[str, Any]) -> Any:
        return crate.add(ContextEntity(crate, entity_id, properties=props))

    def ref(entity: Any) -> dict[str, str]:
        return {"@id": entity.id if hasattr(entity, "id") else entity}

    # The workflow: a copy of its file (or, for a plan made in code, of the plan's tasks), its steps as tools.
    workflow = _add_workflow(crate, run_dir, plan)
    if workflow.id == CWL_MAIN:  # a run of an imported CWL document: the document is the workflow, in CWL
        workflow["programmingLanguage"] = ref(_cwl_language(crate))
    else:
        language = add("#portaflow-workflow-language", {
            "@type": "ComputerLanguage", "name": "portaflow workflow description", "alternateName": "portaflow",
            "url": ref(PORTAFLOW_URL), "version": tools.get("portaflow", "unknown"),
        })
        workflow["programmingLanguage"] = ref(language)
    if cwl_export is not None:
        workflow["subjectOf"] = ref(_add_cwl(crate, run_dir, cwl_export))

    params = {}
    for name, value in sorted(manifest.get("parameters", {}).items()):
        fp = add(_id("param", name), _formal(name, _value_type(value), multiple=isinstance(value, list)))
        pv = add(_id("pv", name), {"@type": "PropertyValue", "name": name, "value": _text(value), "exampleOfWork": ref(fp)})
        fp["workExample"] = ref(pv)
        params[name] = (fp, pv)
    workflow["input"] = [ref(fp) for fp, _ in params.values()]

    steps = _steps(plan)
    tool_of: dict[str, Any] = {}
    out_fp: dict[tuple[str, str], Any] = {}
    in_fp: dict[tuple[str, str], Any] = {}
    howtos = []
    for position, (step, tasks) in enumerate(steps.items()):
        tool = add(_id("step", step), {"@type": "SoftwareApplication", "name": step,
                                     "description": f"step {step} of workflow {manifest['workflow']}"})
        example = tasks[0]
        for name, out in example.outputs.items():
            out_fp[(step, name)] = add(_id("step", step, "output", name),
                                       _formal(f"{step}.{name}", "Dataset" if out.directory else "File"))
        for name in example.inputs:
            in_fp[(step, name)] = add(_id("step", step, "input", name), _formal(f"{step}.{name}", "File"))
        tool["input"] = [ref(in_fp[(step, n)]) for n in example.inputs]
        tool["output"] = [ref(out_fp[(step, n)]) for n in example.outputs]
        tool_of[step] = tool
        howtos.append(add(_id("howto", step), {"@type": "HowToStep", "name": step, "position": str(position),
                                              "workExample": ref(tool)}))
    workflow["hasPart"] = [ref(t) for t in tool_of.values()]
    workflow["step"] = [ref(h) for h in howtos]
    workflow["output"] = [ref(fp) for fp in out_fp.values()]

    # The files: every output the manifest records, every input a task that was to run read.
    files: dict[str, Any] = {}
    manifest_outputs = manifest.get("outputs", {})
    directories = {out.path for task in plan.tasks for out in task.outputs.values() if out.directory}
    workdir = Path(manifest["workdir"])

    def file_entity(path: str, sha256: str | None) -> Any:
        if path not in files:
            entity_id = _relative_id(path, workdir, run_dir, directory=path in directories)
            props: dict[str, Any] = {"name": path}
            if path not in directories and _media_type(path):
                props["encodingFormat"] = _media_type(path)
            if sha256:
                props["sha256"] = sha256
            if entity_id.startswith("file:"):  # outside the crate: rocrate's File would mangle the URI into a relative id
                files[path] = crate.add(ContextEntity(crate, entity_id, properties={
                    "@type": "Dataset" if path in directories else "File", **props}))
                root.append_to("hasPart", files[path])  # a data entity, linked from the root as RO-Crate 1.1 requires
            else:
                cls = Dataset if path in directories else File
                files[path] = crate.add(cls(crate, None, entity_id, properties=props))
        elif sha256 and not files[path].get("sha256"):
            files[path]["sha256"] = sha256
        return files[path]

    for path, info in sorted(manifest_outputs.items()):
        file_entity(path, info.get("sha256"))

    # The tasks: one CreateAction each (of the tasks that were to run), its ControlAction for its step.
    images = manifest.get("containers", {})
    image_entities: dict[str, Any] = {}
    actions, controls = [], []
    for task in plan.tasks:
        info = manifest.get("tasks", {}).get(task.id)
        if not info or "inputs" not in info:  # up to date, or not asked for: it did not run in this run
            continue
        action = add(_id("task", task.id), {"@type": "CreateAction", "name": f"task {task.display}", "instrument": ref(tool_of[task.step]),
                                          "description": f"task {task.display} of step {task.step}: {info['status']}",
                                          "actionStatus": f"http://schema.org/{ACTION_STATUS.get(info['status'], 'FailedActionStatus')}"})
        if info.get("started"):
            action["startTime"] = info["started"]
        if info.get("finished"):
            action["endTime"] = info["finished"]
        if info.get("error"):
            action["error"] = info["error"] + (f" (exit code {info['exit_code']})" if "exit_code" in info else "")
        elif info["status"] == "not run":  # an interrupted run's task that had not finished
            action["error"] = f"not run: the run {status}"
        if info.get("job"):
            action["identifier"] = f"scheduler job {info['job']}"
        if task.container and task.container in images:
            if task.container not in image_entities:
                image_entities[task.container] = add(_id("container", task.container), _image(task.container, images[task.container]))
            action["containerImage"] = ref(image_entities[task.container])
        objects = []
        for name, paths in task.inputs.items():
            for path in (paths,) if isinstance(paths, str) else paths:
                digest = info["inputs"].get(path) or manifest_outputs.get(path, {}).get("sha256")
                if digest is None and not _exists(path, workdir):  # an input of a task that never ran, never made
                    continue
                entity = file_entity(path, digest)
                entity.append_to("exampleOfWork", ref(in_fp[(task.step, name)]))
                in_fp[(task.step, name)].append_to("workExample", ref(entity))
                objects.append(ref(entity))
        for name, value in task.scatter:
            objects.append(ref(add(_id("task", task.id, "scatter", name), {"@type": "PropertyValue", "name": name, "value": _text(value)})))
        results = []
        for name, out in task.outputs.items():
            if manifest_outputs.get(out.path, {}).get("task") == task.id:
                entity = files[out.path]
                entity.append_to("exampleOfWork", ref(out_fp[(task.step, name)]))
                out_fp[(task.step, name)].append_to("workExample", ref(entity))
                results.append(ref(entity))
        action["object"] = objects
        action["result"] = results
        actions.append(action)
        controls.append(add(_id("control", task.id), {"@type": "ControlAction", "name": f"orchestrate {task.display}",
                                                      "instrument": ref(_id("howto", task.step)), "object": ref(action)}))

    # The run: the workflow's CreateAction (the parameters in, every output of the run out), organised by portaflow.
    run = add(_id("run", run_id), {
        "@type": "CreateAction", "name": root["name"], "instrument": ref(workflow), "startTime": _when(manifest["started"]),
        "description": root["description"], "actionStatus": f"http://schema.org/{RUN_STATUS.get(status, 'ActiveActionStatus')}",
        "object": [ref(pv) for _, pv in params.values()],
        "result": [ref(files[path]) for path, info in sorted(manifest_outputs.items())
                   if manifest["tasks"].get(info.get("task"), {}).get("status") == "ran"],
    })
    if manifest.get("finished"):
        run["endTime"] = _when(manifest["finished"])
    if status != "succeeded":
        why = [f"{i['display']}: {i.get('error', i['status'])}" for i in manifest["tasks"].values() if i["status"] in ("failed", "not run")]
        run["error"] = f"the run {status}" + (f": {'; '.join(why)}" if why else "")
    # The run directory's own record: the manifest, the effective site profile (the run's configuration; the profiles
    # give it no place in an action: the OrganizeAction's objects must all be ControlActions), the parameters.
    site = manifest["site"]
    for name, description in (("manifest.json", "portaflow's record of the run (every output's sha256, how each task ended)"),
                              ("site.yaml", f"the effective site profile {site} ({manifest['scheduler']}) the run used"),
                              ("parameters.json", "the workflow's parameter values")):
        if (run_dir / name).is_file():
            crate.add(File(crate, None, name, properties={"name": name, "description": description, "encodingFormat": _media_type(name)}))
    engine = manifest["engine"]
    engine_app = add(*_software(engine, tools.get(engine)))
    portaflow = add(*_software("portaflow", tools.get("portaflow")))
    portaflow["softwareRequirements"] = [ref(engine_app)] + [
        ref(add(*_software(name, version))) for name, version in sorted(tools.items()) if name not in ("portaflow", engine)
    ]
    add(_id("organize", run_id), {
        "@type": "OrganizeAction", "name": f"portaflow runs {manifest['workflow']} with {engine}", "instrument": ref(portaflow),
        "agent": ref(portaflow), "object": [ref(c) for c in controls], "result": ref(run),
        "startTime": _when(manifest["started"]),
        **({"endTime": _when(manifest["finished"])} if manifest.get("finished") else {}),
    })
    root["mentions"] = [ref(run)] + [ref(a) for a in actions]

    return _single_values(crate.metadata.generate())


def _add_workflow(crate: Any, run_dir: Path, plan: Plan) -> Any:
    """The main workflow: a copy of the workflow file in the run directory (what ran, even if the file changes later)."""
    from rocrate.model import ComputationalWorkflow

    if plan.source and Path(plan.source).is_file():
        name = CWL_MAIN if Path(plan.source).suffix == ".cwl" else WORKFLOW_COPY  # as spec.cwl.is_cwl tells them apart
        shutil.copyfile(plan.source, run_dir / name)
        description = f"the workflow description the run used (a copy of {plan.source})"
    else:  # a plan made in code: its tasks stand for the workflow
        (run_dir / PLAN_COPY).write_text(json.dumps(_plan_outline(plan), indent=2, sort_keys=True) + "\n")
        name, description = PLAN_COPY, "the run's plan (made in code, from no workflow file): its tasks and their files"
    workflow = crate.add(ComputationalWorkflow(crate, None, name, properties={
        "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"], "name": plan.workflow, "description": description,
        "conformsTo": {"@id": COMPUTATIONAL_WORKFLOW_PROFILE}, "encodingFormat": _media_type(name)}))
    workflow["sha256"] = _sha256(run_dir / name)
    version = _workflow_version(run_dir / name)
    if version:
        workflow["version"] = version
    crate.mainEntity = workflow
    return workflow


def _add_cwl(crate: Any, run_dir: Path, cwl_export: Path) -> Any:
    """The workflow's CWL export as its abstract description (Workflow RO-Crate's `subjectOf`): the folder `cwl/` of the
    run directory (copied there if it is elsewhere) with the exported workflow.cwl, one CommandLineTool per step, the
    JavaScript library they include and the job file of the run's parameters. Returns the workflow.cwl entity."""
    from rocrate.model import Dataset, File

    target = run_dir / CWL_DIR
    if cwl_export.resolve() != target.resolve():
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(cwl_export, target)
    cwl = _cwl_language(crate)
    parts = []
    main = None
    for path in sorted(p for p in target.iterdir() if p.is_file()):
        name = f"{CWL_DIR}/{path.name}"
        props: dict[str, Any] = {"name": path.name, "sha256": _sha256(path)}
        if path.name == CWL_MAIN:
            props.update({"@type": ["File", "SoftwareSourceCode", "HowTo"], "programmingLanguage": {"@id": cwl.id},
                          "name": "the workflow exported as CWL (portaflow export cwl)", "encodingFormat": _media_type(name)})
        elif path.suffix == ".cwl":
            props.update({"@type": ["File", "SoftwareSourceCode"], "programmingLanguage": {"@id": cwl.id},
                          "description": "a step of the workflow as a CWL CommandLineTool", "encodingFormat": _media_type(name)})
        elif path.suffix == ".js":
            props.update({"description": "the JavaScript the exported tools include (fills portaflow's templates)",
                          "encodingFormat": "text/javascript"})
        else:
            props.update({"description": "the run's parameter values as a CWL input object (cwltool cwl/workflow.cwl cwl/job.yml)",
                          **({"encodingFormat": _media_type(name)} if _media_type(name) else {})})
        entity = crate.add(File(crate, None, name, properties=props))
        parts.append({"@id": entity.id})
        if path.name == CWL_MAIN:
            main = entity
    crate.add(Dataset(crate, None, f"{CWL_DIR}/", properties={
        "name": "the workflow exported as CWL v1.2", "description": "what `portaflow export cwl` writes for this run's workflow, "
        "site and parameters: run it with cwltool cwl/workflow.cwl cwl/job.yml", "hasPart": parts}))
    if main is None:
        raise ValueError(f"{cwl_export}: no {CWL_MAIN} in the CWL export")
    return main


def _cwl_language(crate: Any) -> Any:
    """CWL as Workflow RO-Crate names it (its own id for the language)."""
    from rocrate.model import ContextEntity

    return crate.add(ContextEntity(crate, "https://w3id.org/workflowhub/workflow-ro-crate#cwl", properties={
        "@type": "ComputerLanguage", "name": "Common Workflow Language", "alternateName": "CWL",
        "identifier": {"@id": "https://w3id.org/cwl/v1.2/"}, "url": {"@id": "https://www.commonwl.org/"}, "version": "v1.2"}))


def _workflow_version(path: Path) -> str | None:
    """The `version:` a workflow file states (None for none, or for a plan outline)."""
    import yaml

    if path.suffix != ".yaml":
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    version = data.get("version") if isinstance(data, dict) else None
    return str(version) if version is not None else None


def _steps(plan: Plan) -> dict[str, list[Task]]:
    steps: dict[str, list[Task]] = {}
    for task in plan.tasks:
        steps.setdefault(task.step, []).append(task)
    return steps


def _plan_outline(plan: Plan) -> dict[str, Any]:
    """What a plan made in code says of its tasks (no commands, no environment): steps, files, dependencies."""
    return {"workflow": plan.workflow, "tasks": [
        {"id": t.id, "step": t.step, "inputs": sorted(t.input_paths()), "outputs": sorted(t.output_paths()), "depends": list(t.depends)}
        for t in plan.tasks]}


def _id(kind: str, *names: str) -> str:
    """A contextual entity's id within the crate: `#kind/name/...`, each name percent-encoded (task ids, step and output
    names are the workflow's)."""
    return "#" + "/".join([kind, *(quote(str(n), safe="") for n in names)])


def _full_path(path: str, workdir: Path) -> Path:
    """Where a task's input or output path is: relative to the work directory, absolute, or a file: URI (a CWL
    document's tasks name their documents and job so)."""
    if path.startswith("file:"):
        return Path(url2pathname(urlparse(path).path))
    return Path(path) if Path(path).is_absolute() else workdir / path


def _exists(path: str, workdir: Path) -> bool:
    return _full_path(path, workdir).exists()


def _relative_id(path: str, workdir: Path, run_dir: Path, directory: bool) -> str:
    """A file's id: its path relative to the crate's root (the run directory) for a file of the work directory, a file:
    URI for one outside it (an input the workflow reads from elsewhere). Directories end with '/'."""
    full = _full_path(path, workdir)
    if full.is_relative_to(workdir):
        out = quote(Path(os.path.relpath(full, run_dir)).as_posix())
    else:
        out = full.as_uri()
    return out + "/" if directory and not out.endswith("/") else out


def _formal(name: str, additional_type: str, multiple: bool = False) -> dict[str, Any]:
    props: dict[str, Any] = {"@type": "FormalParameter", "name": name, "additionalType": additional_type,
                             "conformsTo": {"@id": FORMAL_PARAMETER_PROFILE}}
    if multiple:
        props["multipleValues"] = True
    return props


def _value_type(value: Any) -> str:
    first = value[0] if isinstance(value, list) and value else value
    if isinstance(first, bool):
        return "Boolean"
    if isinstance(first, int):
        return "Integer"
    if isinstance(first, float):
        return "Float"
    return "Text"


def _text(value: Any) -> Any:
    """A parameter's value as the crate holds it: scalars as they are, lists as JSON text."""
    return json.dumps(value) if isinstance(value, list | dict) else value


def _software(name: str, version: str | None) -> tuple[str, dict[str, Any]]:
    """A piece of software the run used: its id and properties. The id is where that release is published (PyPI; the
    Python release page): absolute, as the Process Run Crate profile asks, and the same in every crate."""
    if name == "python":
        entity_id = f"https://www.python.org/downloads/release/python-{(version or '').replace('.', '')}/"
        url = "https://www.python.org/"
    else:
        entity_id = f"https://pypi.org/project/{name}/{version}/" if version else f"https://pypi.org/project/{name}/"
        url = ENGINE_URLS.get(name, f"https://pypi.org/project/{name}/")
    props: dict[str, Any] = {"@type": "SoftwareApplication", "name": name, "url": url}
    if version:
        props["softwareVersion"] = version
    return entity_id, props


def _image(name: str, info: dict[str, Any]) -> dict[str, Any]:
    """A container image as the Process Run Crate describes one: where it is, its runtime, its digest where known."""
    image = str(info.get("image") or "")
    runtime = str(info.get("runtime") or "")
    sif = image.endswith(".sif") or runtime == "apptainer" and not image.startswith(("docker://", "oras://"))
    props: dict[str, Any] = {"@type": "ContainerImage", "name": name, "additionalType": {"@id": f"{WFRUN}{'SIFImage' if sif else 'DockerImage'}"}}
    if image:
        props["identifier"] = image
    if runtime:
        props["description"] = f"run with {runtime}"
    if info.get("digest"):
        props["sha256"] = str(info["digest"]).removeprefix("sha256:")
    return props


def _when(stamp: str) -> str:
    """A manifest's time (local, without an offset) in ISO 8601 with its UTC offset, as the profiles ask."""
    import datetime as dt

    return dt.datetime.fromisoformat(stamp).astimezone().isoformat(timespec="seconds")


MEDIA_TYPES = {".yaml": "application/yaml", ".yml": "application/yaml", ".tsv": "text/tab-separated-values", ".cwl": "application/x-yaml"}


def _media_type(path: str) -> str | None:
    """A file's media type from its name (None when the name does not tell)."""
    import mimetypes

    suffix = Path(path).suffix.lower()
    return MEDIA_TYPES.get(suffix) or mimetypes.guess_type(path, strict=False)[0]


def _single_values(data: dict[str, Any]) -> dict[str, Any]:
    """One value where a property has one (RO-Crate 1.1 writes a single value, not a one-element list)."""
    for entity in data["@graph"]:
        for key, value in list(entity.items()):
            if key != "@type" and isinstance(value, list) and len(value) == 1:
                entity[key] = value[0]
    return data


def _sha256(path: Path) -> str:
    from portaflow.hashing import sha256_file

    return sha256_file(path)
