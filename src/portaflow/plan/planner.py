"""Make a plan: expand scatter, fill templates, derive the DAG, pick partitions."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from portaflow.errors import InputError, PlanError, Problem, SpecError
from portaflow.gctools import paused_gc
from portaflow.plan.model import DaskPlan, OutputPlan, Plan, Task, TaskResources
from portaflow.plan.partitions import choose_partition, choose_partition_explained, with_partition_gpu_model
from portaflow.plan.templates import TemplateError, fields, render_arg, render_command, render_path
from portaflow.spec.limits import MAX_FANOUT, MAX_PLAN_PATHS, MAX_PLAN_TASKS, limit_message
from portaflow.spec.loading import parse_value
from portaflow.spec.site import SiteProfile
from portaflow.spec.workflow import Step, Workflow, output_path_problem
from portaflow.spec.yamlfile import did_you_mean


class LocatedPlanError(PlanError):
    """A plan error that belongs to one key of the workflow file (a scatter list, an output path).

    It carries the key's path, so that whoever holds the file (the driver, `validate`) can say file:line
    (`located`); the plan itself reads no file."""

    def __init__(self, message: str, keypath: tuple[str, ...]):
        super().__init__(f"{'.'.join(keypath)}: {message}")
        self.message = message
        self.keypath = keypath


class OutputPathError(LocatedPlanError):
    """An output path that leaves the work directory once its parameters are filled in."""

    def __init__(self, message: str, keypath: tuple[str, ...]):
        super().__init__(message, keypath)
        self.args = (message,)  # its message names the step and the output already


def located(exc: LocatedPlanError, document: Any) -> SpecError:
    """The error at its place in the workflow file (`document`: the workflow's YamlDocument)."""
    keypath = exc.keypath
    while keypath and _missing(document.data, keypath):  # e.g. an output given as a bare path has no 'path' key
        keypath = keypath[:-1]
    return SpecError([Problem(document.value_location(keypath), ".".join(keypath), exc.message)])


def _missing(data: Any, keypath: tuple[str, ...]) -> bool:
    node = data
    for key in keypath:
        if not isinstance(node, Mapping) or key not in node:
            return True
        node = node[key]
    return False


def confined_output(step: Step, step_name: str, key: str, template: str, path: str, values: Mapping[str, Any]) -> None:
    """Refuse an output path that, filled in, is absolute, climbs out ('..') or is the work directory itself."""
    problem = output_path_problem(path) or path_text_problem(path)
    if problem is None:
        return
    used = ", ".join(f"{f}={values[f]!r}" for f in dict.fromkeys(fields(template)) if f in values)
    raise OutputPathError(
        f"step {step_name}: output {key} is {path!r}" + (f" (from {template!r} with {used})" if used else "")
        + f", which {problem}; outputs must be plain paths inside the work directory, whatever the parameters hold",
        ("steps", step_name, "outputs", key) + (() if isinstance(step.outputs[key], str) else ("path",)),
    )


def check_output_paths(workflow: Workflow, params: Mapping[str, Any]) -> None:
    """What `validate` can say about output paths without a site: each one, filled in with `params` and every
    scatter value, stays inside the work directory (OutputPathError otherwise). Templates that cannot be
    filled are left to `plan`, which names them."""
    scatter = scatter_values(workflow, params)
    for step_name, step in workflow.steps.items():
        own = list(step.scatter)
        combos = [dict(zip(own, values, strict=True)) for values in itertools.product(*(scatter[v] for v in own))] or [{}]
        for key, spec in step.output_specs().items():
            for combo in combos:
                values = {**params, **combo}
                try:
                    path = render_path(spec.path, values)
                except TemplateError:
                    break
                confined_output(step, step_name, key, spec.path, path, values)


def path_text_problem(path: str) -> str | None:
    """Why a filled-in input or output path cannot be written into every engine's files, or None.

    Why: Snakemake reads braces in a rule's input and output paths as wildcards (a path with `{x}` fails there with a
    WildcardError while Parsl runs it), and a newline or NUL cannot be in a file name the engines and shells agree on.
    Refusing them keeps both engines running the same workflows."""
    if "\n" in path or "\r" in path or "\0" in path:
        return "contains a newline, carriage return or NUL"
    if "{" in path or "}" in path:
        return "contains a brace, which Snakemake would read as a wildcard"
    if any(len(part.encode()) > 255 for part in path.split("/")):
        return "has a file or directory name longer than 255 bytes, which no common filesystem can hold"
    return None


def check_workflow(workflow: Workflow, params: Mapping[str, Any]) -> Plan:
    """What `validate` refuses without a site: everything `make_plan` refuses that does not depend on a site's limits
    (scatter lists, templates, paths, clashing outputs, self-dependencies, cycles), planned on a stand-in site that
    fits every request (LocatedPlanError, located, or PlanError)."""
    check_output_paths(workflow, params)
    return make_plan(workflow, _fits_everything(workflow), params)


def _fits_everything(workflow: Workflow) -> SiteProfile:
    """A site with one partition larger than any step asks for (so only the workflow's own problems are found)."""
    models = sorted({s.resources.gpu_model for s in workflow.steps.values() if s.resources.gpu_model})
    big = 2 ** 40
    return SiteProfile.model_validate({
        "name": "any", "scheduler": "local",
        "partitions": {"any": {"max_walltime": big, "cores_per_node": big, "memory_per_node": big, "gpus_per_node": big,
                               "gpu_models": models, "max_nodes": big}},
    })


CALL_ENTRY = "python3 -m portaflow.runtime.call"
"""How python and dask steps run: a small entry point, so both engines run a plain shell command."""


def resolve_parameters(workflow: Workflow, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults with overrides applied; an override takes the type of the default it replaces."""
    params = dict(workflow.parameters)
    for key, value in overrides.items():
        if key not in params:
            hint = did_you_mean(key, list(params))
            known = ", ".join(params) or "none"
            raise InputError(f"unknown parameter {key!r} for workflow {workflow.name}" + (f"; {hint}" if hint else f" (parameters: {known})"))
        params[key] = _coerce(key, value, params[key])
    return params


def _coerce(key: str, value: Any, default: Any) -> Any:
    kind = type(default)
    if isinstance(value, str) and kind is not str:
        value = parse_value(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is str and not isinstance(value, str):
        return str(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"parameter {key!r} expects {kind.__name__} (like its default {default!r}), found {value!r}")
    return value


def make_plan(workflow: Workflow, site: SiteProfile, parameters: Mapping[str, Any] | None = None) -> Plan:
    """Workflow x site -> concrete tasks in dependency order. Raises PlanError/InputError, never does I/O."""
    with paused_gc():
        return _make_plan(workflow, site, parameters)


def _make_plan(workflow: Workflow, site: SiteProfile, parameters: Mapping[str, Any] | None) -> Plan:
    params = resolve_parameters(workflow, parameters or {})
    scatter = scatter_values(workflow, params)
    tasks: list[Task] = []
    paths = 0
    for step_name, step in workflow.steps.items():
        paths += _paths_of_step(step, params, scatter)
        if paths > MAX_PLAN_PATHS:
            raise LocatedPlanError(limit_message(f"the input and output paths of the plan's tasks, up to step {step_name},", MAX_PLAN_PATHS,
                                                 "MAX_PLAN_PATHS", paths), ("steps", step_name))
        tasks.extend(_expand_step(step_name, step, params, scatter, site))
    tasks, external = _wire(tasks)
    return Plan(workflow.name, site.name, site.scheduler, params, tasks, external)


def scatter_values(workflow: Workflow, params: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each scatter variable's values, fixed now (data-dependent fan-out is refused), and no step wider than
    MAX_FANOUT nor the plan's steps together over MAX_PLAN_TASKS (LocatedPlanError: the key that asks for it)."""
    out: dict[str, list[Any]] = {}
    owner: dict[str, str] = {}
    total = 0
    for step_name, step in workflow.steps.items():
        width = 1
        for var, spec in step.scatter.items():
            where = ("steps", step_name, "scatter", var)
            if var in params:
                raise LocatedPlanError(f"scatter variable {var!r} has the name of a parameter; choose another name", where)
            values = _scatter_list(spec, params, where)
            if var in out and out[var] != values:
                raise LocatedPlanError(f"scatter variable {var!r} has other values in step {owner[var]}; use one list per variable", where)
            out[var], owner[var] = values, step_name
            width *= len(values)
            if width > MAX_FANOUT:
                sizes = " x ".join(str(len(out[v])) for v in step.scatter if v in out)
                raise LocatedPlanError(limit_message(f"step {step_name}'s fan-out ({sizes} values) into tasks", MAX_FANOUT, "MAX_FANOUT", width),
                                       where)
        total += width
        if total > MAX_PLAN_TASKS:
            raise LocatedPlanError(limit_message(f"the plan's tasks up to step {step_name}", MAX_PLAN_TASKS, "MAX_PLAN_TASKS", total),
                                   ("steps", step_name))
    return out


def _scatter_list(spec: Any, params: Mapping[str, Any], where: tuple[str, ...]) -> list[Any]:
    if isinstance(spec, list):
        values = spec
    elif isinstance(spec, str):
        match = re.fullmatch(r"\{(\w+)\}", spec.strip())
        if not match:
            raise LocatedPlanError(
                f"expected a list, '{{parameter}}' naming a list parameter, or {{range: N}}, found {spec!r}. "
                "Fan-out lists are fixed when the plan is made: fan-out that depends on data (globs, files listing files) is not supported",
                where,
            )
        name = match.group(1)
        if name not in params:
            raise LocatedPlanError(f"unknown parameter {name!r}", where)
        values = params[name]
        if not isinstance(values, list):
            raise LocatedPlanError(f"parameter {name!r} must be a list to scatter over, found {values!r}", where)
    elif isinstance(spec, dict) and set(spec) == {"range"}:
        values = _range_values(spec["range"], params, where)
    else:
        raise LocatedPlanError(f"expected a list, '{{parameter}}' or {{range: N}}, found {spec!r}", where)
    if not values:
        raise LocatedPlanError("the fan-out is empty", where)
    if len(values) > MAX_FANOUT:
        raise LocatedPlanError(limit_message("the fan-out's number of values", MAX_FANOUT, "MAX_FANOUT", len(values)), where)
    if len(set(map(_value_key, values))) != len(values):
        raise LocatedPlanError("the fan-out has repeated values", where)
    return list(values)


def _range_values(bound: Any, params: Mapping[str, Any], where: tuple[str, ...]) -> list[int]:
    """{range: N}, [start, stop] or [start, stop, step], N possibly '{parameter}'; measured before it is made."""
    if isinstance(bound, str):
        try:
            bound = render_arg(bound, params)
        except TemplateError as exc:
            raise LocatedPlanError(str(exc), (*where, "range")) from None
    bounds = bound if isinstance(bound, list) else [bound]
    if not bounds or not all(isinstance(b, int) and not isinstance(b, bool) for b in bounds) or len(bounds) > 3 or bounds[2:] == [0]:
        raise LocatedPlanError(f"range expects N, [start, stop] or [start, stop, step] of integers (step not 0), found {bound!r}",
                               (*where, "range"))
    values = range(*bounds)
    try:
        count: int | None = len(values)
    except OverflowError:  # more values than a Python sequence can count
        count = None
    if count is None or count > MAX_FANOUT:
        raise LocatedPlanError(limit_message(f"range {bound!r}'s number of values", MAX_FANOUT, "MAX_FANOUT", count), (*where, "range"))
    return list(values)


def _value_key(value: Any) -> str:
    """A scatter value as text that tells values apart (JSON; repr for what JSON cannot write)."""
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _paths_of_step(step: Step, params: Mapping[str, Any], scatter: Mapping[str, list[Any]]) -> int:
    """How many input and output paths the step's tasks hold, counted before they are made (MAX_PLAN_PATHS).

    Why: a step that gathers over a wide fan-out holds every path of it in each of its own tasks, so two wide
    fan-outs multiply, far beyond either one's width."""
    tasks = 1
    for var in step.scatter:
        tasks *= len(scatter[var])
    per_task = len(step.outputs)
    for template in step.inputs.values():
        for text in [template] if isinstance(template, str) else template:
            try:
                gathered = [f for f in dict.fromkeys(fields(text)) if f in scatter and f not in step.scatter]
            except TemplateError:
                gathered = []  # the planner names it
            size = 1
            for var in gathered:
                size *= len(scatter[var])
            per_task += size
    return tasks * per_task


_SAFE = re.compile(r"[^A-Za-z0-9_]")
_LONGEST_ID = 120
"""Task ids name files (`<id>.log`, job scripts with suffixes, Snakemake's per-rule log folders): long scatter values are
cut and a digest of the whole keeps ids distinct."""


def _task_ids(step_name: str, combo: Mapping[str, Any]) -> tuple[str, str]:
    if not combo:
        return step_name, step_name
    display = step_name + "[" + ",".join(f"{k}={v}" for k, v in combo.items()) + "]"
    safe = step_name + "__" + "__".join(f"{_SAFE.sub('_', k)}_{_SAFE.sub('_', str(v))}" for k, v in combo.items())
    if len(safe) > _LONGEST_ID:  # a file name (logs, markers, job scripts) must stay well under 255 bytes
        safe = safe[:_LONGEST_ID - 17] + "__" + hashlib.sha256(display.encode()).hexdigest()[:15]
    return safe, display


def _expand_step(name: str, step: Step, params: Mapping[str, Any], scatter: Mapping[str, list[Any]], site: SiteProfile) -> Iterable[Task]:
    own = list(step.scatter)
    combos = [dict(zip(own, values, strict=True)) for values in itertools.product(*(scatter[v] for v in own))] or [{}]
    request = TaskResources(
        cores=step.resources.cores,
        memory_mib=step.resources.memory,
        walltime_s=step.resources.walltime,
        gpus=step.resources.gpus,
        gpu_model=step.resources.gpu_model,
        nodes=step.resources.nodes,
    )
    try:
        dask_plan = _dask_plan(name, step, site) if step.kind == "dask" else None
        if dask_plan and dask_plan.mode in ("local", "in_allocation"):
            request = with_in_allocation_workers(request, dask_plan)
        partition, reason = choose_partition_explained(site, request, f"step {name}")
    except LocatedPlanError:
        raise
    except PlanError as exc:  # the step's request does not fit the site: located at its resources
        raise LocatedPlanError(str(exc), ("steps", name, "resources")) from None
    request = with_partition_gpu_model(request, site.partitions[partition])
    where = f"steps.{name}"
    output_specs = step.output_specs()
    for key, spec in output_specs.items():
        try:
            missing = [f for f in fields(spec.path) if f in scatter and f not in own]
        except TemplateError as exc:
            raise LocatedPlanError(f"{where}.outputs.{key}: {exc}", _output_keypath(step, name, key)) from None
        if missing:
            raise LocatedPlanError(f"{where}.outputs.{key}: uses scatter variable {missing[0]!r}, which step {name} does not scatter over",
                                    _output_keypath(step, name, key))
    seen_ids: set[str] = set()
    for combo in combos:
        values = {**params, **combo}
        try:
            inputs = {}
            for k, v in step.inputs.items():
                inputs[k] = _expand_input(v, values, scatter, own)
                for path in [inputs[k]] if isinstance(inputs[k], str) else inputs[k]:
                    problem = path_text_problem(path)
                    if problem:
                        raise LocatedPlanError(f"step {name}: input {k} is {path!r}, which {problem}; input paths must be plain "
                                                "file names, whatever the parameters hold", ("steps", name, "inputs", k))
            outputs = {}
            for key, spec in output_specs.items():
                path = render_path(spec.path, values)
                confined_output(step, name, key, spec.path, path, values)
                outputs[key] = OutputPlan(key, _normal(path), spec.directory, spec.compare)
            command = _command(step, values, inputs, outputs)
            env = {k: render_path(v, values) for k, v in step.env.items()}
        except TemplateError as exc:
            known = sorted([*params, *scatter])
            unknown = re.search(r"\{(.+?)\}", str(exc))
            hint = did_you_mean(unknown.group(1), known) if unknown else None
            raise LocatedPlanError(f"{where}: {exc}" + (f"; {hint}" if hint else f" (known: parameters {', '.join(params) or 'none'}; "
                                                                                  f"scatter variables {', '.join(scatter) or 'none'})"),
                                    ("steps", name)) from None
        task_id, display = _task_ids(name, combo)
        if task_id in seen_ids:
            task_id = f"{task_id}_{len(seen_ids)}"
        seen_ids.add(task_id)
        yield Task(
            id=task_id, display=display, step=name, kind=step.kind, scatter=tuple(combo.items()),
            inputs=inputs, outputs=outputs, command=command, resources=request, partition=partition,
            container=step.container, env=env, retries=step.retries, depends=(), dask=dask_plan, partition_reason=reason,
        )


def _output_keypath(step: Step, name: str, key: str) -> tuple[str, ...]:
    return ("steps", name, "outputs", key) + (() if isinstance(step.outputs[key], str) else ("path",))


def _normal(path: str) -> str:
    """A path as it is compared for DAG edges: no './' prefix, no doubled or trailing slashes."""
    if "\n" in path or "\0" in path:
        raise PlanError(f"path {path!r} contains a newline or NUL")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    normal = "/".join(parts)
    return "/" + normal if path.startswith("/") else normal


def _expand_input(template: str | list[str], values: Mapping[str, Any], scatter: Mapping[str, list[Any]], own: list[str]) -> str | tuple[str, ...]:
    """A path, or a tuple of paths when the template gathers over another step's scatter variable."""
    templates = [template] if isinstance(template, str) else template
    out: list[str] = []
    gathered = not isinstance(template, str)
    for text in templates:
        gather = [f for f in dict.fromkeys(fields(text)) if f in scatter and f not in own]
        if not gather:
            out.append(_normal(render_path(text, values)))
            continue
        gathered = True
        for combo in itertools.product(*(scatter[g] for g in gather)):
            out.append(_normal(render_path(text, {**values, **dict(zip(gather, combo, strict=True))})))
    return tuple(out) if gathered else out[0]


def _command(step: Step, values: Mapping[str, Any], inputs: Mapping[str, Any], outputs: Mapping[str, OutputPlan]) -> str:
    if step.command is not None:
        fields_for_command: dict[str, Any] = dict(values)
        fields_for_command.update({f"inputs.{k}": v for k, v in inputs.items()})
        fields_for_command.update({f"outputs.{k}": o.path for k, o in outputs.items()})
        fields_for_command.update({
            "resources.cores": step.resources.cores, "resources.gpus": step.resources.gpus,
            "resources.memory_mib": step.resources.memory, "resources.walltime_s": step.resources.walltime,
        })
        return render_command(step.command.strip(), fields_for_command)
    payload = {
        "target": step.python or step.dask,
        "dask": step.kind == "dask",
        "inputs": {k: (list(v) if isinstance(v, tuple) else v) for k, v in inputs.items()},
        "outputs": {k: o.path for k, o in outputs.items()},
        "args": render_arg(step.args, values),
    }
    return f"{CALL_ENTRY} {render_command('{p}', {'p': json.dumps(payload, sort_keys=True, separators=(',', ':'))})}"


def _dask_plan(name: str, step: Step, site: SiteProfile) -> DaskPlan:
    workers = step.resources.dask_workers
    cpu = workers.cpu if workers else 1
    gpu = workers.gpu if workers else 0
    threads = workers.threads if workers else site.dask.worker_cores
    memory = (workers.memory if workers and workers.memory else None) or site.dask.worker_memory
    mode = site.dask.mode  # a local site is in_allocation by nature: its workers run beside the step on this machine
    if cpu + gpu == 0:
        raise PlanError(f"step {name}: a dask step needs at least one worker (resources.dask_workers)")
    if mode != "jobs":
        return DaskPlan(mode, cpu, gpu, threads, memory, site.dask.gpu_resource)
    walltime = step.resources.walltime
    cpu_req = TaskResources(threads, memory, walltime)
    gpu_req = TaskResources(threads, memory, walltime, gpus=1, gpu_model=step.resources.gpu_model)
    cpu_part = site.dask.worker_partition or (choose_partition(site, cpu_req, f"step {name} (CPU Dask worker)") if cpu else None)
    gpu_part = site.dask.gpu_worker_partition or (choose_partition(site, gpu_req, f"step {name} (GPU Dask worker)") if gpu else None)
    if gpu_part in site.partitions:
        gpu_req = with_partition_gpu_model(gpu_req, site.partitions[gpu_part])
    return DaskPlan(
        mode, cpu, gpu, threads, memory, site.dask.gpu_resource,
        cpu_worker=cpu_req if cpu else None, cpu_worker_partition=cpu_part,
        gpu_worker=gpu_req if gpu else None, gpu_worker_partition=gpu_part,
    )


def with_in_allocation_workers(request: TaskResources, dask: DaskPlan) -> TaskResources:
    """Workers inside the step's own job: the job must hold them all (plus the driver's core). A step on several nodes
    spreads its workers over them (the adapter starts them one per node in turn), so each node (cores, memory and GPUs
    are per node, as partitions count them) holds its share: the workers divided by the nodes, rounded up."""
    nodes = max(1, request.nodes)
    workers = -(-(dask.cpu_workers + dask.gpu_workers) // nodes)
    return TaskResources(
        cores=max(request.cores, workers * dask.threads),
        memory_mib=max(request.memory_mib, workers * dask.worker_memory_mib),
        walltime_s=request.walltime_s,
        gpus=max(request.gpus, -(-dask.gpu_workers // nodes)),
        gpu_model=request.gpu_model,
        nodes=request.nodes,
    )


def _wire(tasks: list[Task]) -> tuple[list[Task], dict[str, list[str]]]:
    """Derive edges from paths, refuse clashes and cycles, and order tasks topologically."""
    producer: dict[str, str] = {}
    by_id = {t.id: t for t in tasks}
    for task in tasks:
        for path in task.output_paths():
            if path in producer:
                other = by_id[producer[path]]
                key = next(k for k, o in task.outputs.items() if o.path == path)
                if other.step == task.step:
                    raise LocatedPlanError(
                        f"step {task.step}: tasks {other.display} and {task.display} both write {path}; "
                        "put the scatter variable in the output path", ("steps", task.step, "outputs", key)
                    )
                raise LocatedPlanError(f"steps {other.step} and {task.step} both write {path}", ("steps", task.step, "outputs", key))
            producer[path] = task.id
    for task in tasks:  # an output inside another: removing the outer one (a stale directory) would remove it too
        for key, output in task.outputs.items():
            parts = output.path.split("/")
            for depth in range(1, len(parts)):
                outer = "/".join(parts[:depth])
                if outer in producer:
                    other = by_id[producer[outer]]
                    raise LocatedPlanError(
                        f"step {task.step}: output {key} ({output.path}) is inside {outer}, an output of {other.display}; outputs may "
                        "not nest (a rerun removes the outer one with everything in it, and Snakemake refuses such rules)",
                        ("steps", task.step, "outputs", key))
    external: dict[str, list[str]] = {}
    wired: dict[str, Task] = {}
    for task in tasks:
        deps = []
        for path in task.input_paths():
            if path in producer:
                if producer[path] == task.id:
                    key = next(k for k, v in task.inputs.items() if path == v or (not isinstance(v, str) and path in v))
                    raise LocatedPlanError(f"step {task.step}: {path} is both an input and an output of {task.display}",
                                            ("steps", task.step, "inputs", key))
                deps.append(producer[path])
            else:
                external.setdefault(path, []).append(task.id)
        wired[task.id] = Task(**{**task.__dict__, "depends": tuple(dict.fromkeys(deps))})
    return _topological(wired), external


def _topological(tasks: dict[str, Task]) -> list[Task]:
    """Kahn's algorithm, stable in declaration order; a leftover means a cycle, which is named by step."""
    indegree = {tid: len(t.depends) for tid, t in tasks.items()}
    children: dict[str, list[str]] = {}
    for tid, task in tasks.items():
        for dep in task.depends:
            children.setdefault(dep, []).append(tid)
    ready = deque(tid for tid, n in indegree.items() if n == 0)
    order: list[str] = []
    while ready:
        tid = ready.popleft()
        order.append(tid)
        for child in children.get(tid, []):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) < len(tasks):
        cycle = _find_cycle(tasks, set(tasks) - set(order))
        raise LocatedPlanError(f"the workflow has a cycle: {' -> '.join(cycle)}", ("steps", cycle[0]))
    return [tasks[tid] for tid in order]


def _find_cycle(tasks: dict[str, Task], remaining: set[str]) -> list[str]:
    """Steps along one cycle among the tasks that could not be ordered ('a -> b -> a')."""
    start = next(iter(sorted(remaining)))
    path, index = [start], {start: 0}
    node = start
    while True:
        node = next(d for d in tasks[node].depends if d in remaining)
        if node in index:
            cycle = path[index[node]:] + [node]
            steps = [tasks[t].step for t in cycle]
            steps.reverse()  # data-flow order: producer -> consumer
            return [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]
        index[node] = len(path)
        path.append(node)
