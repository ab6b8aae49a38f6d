"""Dask workers as pods on Kubernetes sites (`dask.mode: jobs`): their specs, from the same profile as every pod.

Each worker kind (CPU, GPU) gets one complete Pod, built by `KubernetesScheduler.worker_pod_spec` and completed
by `KubernetesScheduler.complete` like every pod the engines create: requests = limits (the GPU as the profile's
`gpu_resource`), the worker partition's node pool selector and tolerations, the step's image, pull secrets and
policy, the run's labels, `restartPolicy: Never`, a deadline of the step's walltime plus grace. The runtime
(`runtime/dask_pods.py`) creates one pod per worker from it.

Where the site runs the Dask Kubernetes operator (`kubernetes.dask_operator: true`), the same pod specs go into a
DaskCluster resource (dask-kubernetes' `make_cluster_spec`), one worker group per kind (the second a
DaskWorkerGroup). The operator runs them as Deployments, so there they keep the Deployment's restart policy
(Always) and carry no deadline; the cluster's `idleTimeout` and its deletion at the end of the step end them.

`dask_resource_problems` checks such a resource offline: its structure against the operator's own CRD schema
(shipped with dask-kubernetes), each embedded pod spec as a Pod (kubernetes-validate strict, `pod_spec_problems`),
the scheduler's service as a Service, and the rules of a Deployment's pod template.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.errors import InputError
from portaflow.plan.model import Task
from portaflow.runtime.dask_pods import DEFAULT_PORT, SCHEDULER_ENV, WORKER_LABEL, worker_pods
from portaflow.schedulers.kubernetes.manifests import (
    RUN_LABEL,
    TASK_LABEL,
    image_reference,
    label_problems,
    label_safe,
    manifest,
    pod_spec_problems,
    schema_problems,
    write_manifests,
)
from portaflow.spec.kubernetes import DNS1123_LABEL

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext
    from portaflow.schedulers.kubernetes import KubernetesScheduler

DASK_KINDS = ("DaskCluster", "DaskWorkerGroup")
DASK_API_VERSION = "kubernetes.dask.org/v1"
DEATH_TIMEOUT_S = 60
"""A worker that cannot reach its scheduler this long exits (its pod ends; restartPolicy Never)."""


def dask_name(task_id: str) -> str:
    """The base of every name a step's Dask cluster uses: a DNS-1123 label with room for suffixes."""
    return "pf-" + (re.sub(r"[^a-z0-9-]", "-", task_id.lower()).strip("-")[:30].strip("-") or "step") + "-dask"


def worker_settings(scheduler: KubernetesScheduler, task: Task, run_id: str) -> dict[str, Any]:
    """What `runtime/dask_pods.py` needs in PORTAFLOW_DASK besides the DaskPlan: pod templates and where to run."""
    site, k8s = scheduler.site, scheduler.site.kubernetes
    out: dict[str, Any] = {
        "namespace": k8s.namespace,
        "interface": site.network.interface,
        "port": site.network.port_range[0] if site.network.port_range else DEFAULT_PORT,
        "selector": {RUN_LABEL: label_safe(run_id), TASK_LABEL: label_safe(task.id)},
        "operator": k8s.dask_operator,
    }
    if k8s.dask_operator:
        out["cluster_resources"] = cluster_resources(scheduler, task, run_id)
    else:
        out["worker_pods"] = worker_pod_templates(scheduler, task, run_id)
    return out


def _worker_args(task: Task, kind: str) -> list[str]:
    dask = task.dask
    request = getattr(dask, f"{kind}_worker")
    args = ["--nthreads", str(dask.threads), "--memory-limit", f"{request.memory_mib}MiB"]
    return args + (["--resources", f"{dask.gpu_resource}=1"] if kind == "gpu" else [])


def _image_and_env(scheduler: KubernetesScheduler, task: Task) -> tuple[str, dict[str, str]]:
    site = scheduler.site
    image = image_reference(site, task.container or site.kubernetes.default_container)
    return image, {**site.environment.env, **task.env}


def worker_pod_templates(scheduler: KubernetesScheduler, task: Task, run_id: str) -> dict[str, dict[str, Any]]:
    """Worker kind -> its complete Pod (name and scheduler address are the runtime's: `runtime.dask_pods.worker_pods`)."""
    from kubernetes import client

    dask = task.dask
    if dask is None or dask.mode != "jobs":
        raise InputError(f"step {task.id}: worker pods are for dask.mode jobs")
    image, env = _image_and_env(scheduler, task)
    templates = {}
    for kind in ("cpu", "gpu"):
        request, partition = getattr(dask, f"{kind}_worker"), getattr(dask, f"{kind}_worker_partition")
        if request is None:
            continue
        spec = scheduler.worker_pod_spec(
            request, partition, image, [f"$({SCHEDULER_ENV})", *_worker_args(task, kind), "--no-dashboard",
                                        "--death-timeout", str(DEATH_TIMEOUT_S)],
            run_id, command=["dask", "worker"], env={SCHEDULER_ENV: "", **env})
        pod = client.V1Pod(metadata=client.V1ObjectMeta(name=f"{dask_name(task.id)}-{kind}", labels={WORKER_LABEL: kind}), spec=spec)
        scheduler.complete(pod, request, partition, run_id, task.resources.walltime_s, task.id)
        templates[kind] = manifest(pod)
    return templates


def cluster_resources(scheduler: KubernetesScheduler, task: Task, run_id: str) -> list[dict[str, Any]]:
    """A DaskCluster (dask-kubernetes' `make_cluster_spec`) whose worker groups are the profile's worker pods,
    plus a DaskWorkerGroup when the step has both CPU and GPU workers."""
    try:
        from dask_kubernetes.operator import make_cluster_spec, make_worker_spec
    except ImportError:
        raise InputError(f"site {scheduler.site.name}: kubernetes.dask_operator needs dask-kubernetes "
                         "(pip install 'portaflow[kubernetes]')") from None
    dask = task.dask
    if dask is None or dask.mode != "jobs":
        raise InputError(f"step {task.id}: a DaskCluster is for dask.mode jobs")
    image, env = _image_and_env(scheduler, task)
    name = dask_name(task.id)
    labels = scheduler.labels(run_id, task.id)
    kinds = [k for k in ("cpu", "gpu") if getattr(dask, f"{k}_worker") is not None]
    groups = {}
    for kind in kinds:
        request, partition = getattr(dask, f"{kind}_worker"), getattr(dask, f"{kind}_worker_partition")
        made = make_worker_spec(image=image, n_workers=getattr(dask, f"{kind}_workers"), worker_command="dask worker")
        theirs = made["spec"]["containers"][0]
        spec = manifest(scheduler.worker_pod_spec(request, partition, image, theirs["args"][2:] + _worker_args(task, kind),
                                                  run_id, command=theirs["args"][:2], env=env or None))
        _as_deployment_template(spec)
        spec["containers"][0]["ports"] = theirs["ports"]
        groups[kind] = {"replicas": made["replicas"], "metadata": {"labels": {**labels, WORKER_LABEL: kind}}, "spec": spec}
    # idleTimeout: the operator deletes a cluster left idle longer than the step may run (its pod died first)
    body = make_cluster_spec(name=name, image=image, worker_command="dask worker",
                             idle_timeout=task.resources.walltime_s + scheduler.site.kubernetes.deadline_grace)
    body["metadata"] = {"name": name, "namespace": scheduler.site.kubernetes.namespace, "labels": dict(labels)}
    body["spec"]["worker"] = groups[kinds[0]]
    # The scheduler pod: dask-kubernetes' container (ports, probes), sized and placed like the step's own pod.
    sched = body["spec"]["scheduler"]
    theirs = sched["spec"]["containers"][0]
    spec = manifest(scheduler.worker_pod_spec(task.resources, task.partition, image, theirs["args"][1:], run_id,
                                              command=["dask", "scheduler"], env=env or None))  # theirs: dask-scheduler
    _as_deployment_template(spec)
    spec["containers"][0].update(name="scheduler", ports=theirs["ports"], readinessProbe=theirs["readinessProbe"],
                                 livenessProbe=theirs["livenessProbe"])
    sched["spec"], sched["metadata"] = spec, {"labels": dict(labels)}
    out = [body]
    for kind in kinds[1:]:
        out.append({"apiVersion": DASK_API_VERSION, "kind": "DaskWorkerGroup",
                    "metadata": {"name": f"{name}-{kind}", "namespace": scheduler.site.kubernetes.namespace, "labels": dict(labels)},
                    "spec": {"cluster": name, "worker": groups[kind]}})
    return out


def _as_deployment_template(spec: dict[str, Any]) -> None:
    """The operator runs pods through Deployments: restartPolicy must be Always and no deadline is allowed."""
    spec.pop("restartPolicy", None)
    spec.pop("activeDeadlineSeconds", None)


# -- offline checks ----------------------------------------------------------------------------------
def dask_resource_problems(body: dict[str, Any]) -> list[str]:
    """A DaskCluster or DaskWorkerGroup as the API server (with the operator's CRDs) and the operator would judge it."""
    kind = body.get("kind", "")
    name = (body.get("metadata") or {}).get("name", "")
    meta = body.get("metadata") or {}
    problems = []
    if len(name) > 53 or not DNS1123_LABEL.match(name):
        problems.append(f"metadata.name {name!r}: expected a DNS-1123 label of at most 53 characters (the operator names a service <name>-scheduler)")
    if meta.get("namespace") and not DNS1123_LABEL.match(meta["namespace"]):
        problems.append(f"metadata.namespace {meta['namespace']!r}: expected a DNS-1123 label")
    problems += label_problems(meta.get("labels"), "metadata.labels")
    for path, group in (("spec.worker", (body.get("spec") or {}).get("worker")), ("spec.scheduler", (body.get("spec") or {}).get("scheduler"))):
        if isinstance(group, dict):
            problems += label_problems((group.get("metadata") or {}).get("labels"), f"{path}.metadata.labels")
    schema = _crd_schema(kind)
    if schema is None:
        problems.append("dask-kubernetes is not installed: the structure was not checked against the operator's CRD")
    else:
        problems += _against(schema, body)
    for path, spec in _embedded(body, "PodSpec"):
        problems += _deployment_problems(spec, path)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name or "x"}, "spec": spec}
        problems += pod_spec_problems(spec, path)
        problems += [f"{path}: {p.split(': ', 1)[1]}" for p in schema_problems(pod)]
    for path, spec in _embedded(body, "ServiceSpec"):
        service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name or "x"}, "spec": spec}
        problems += [f"{path}: {p.split(': ', 1)[1]}" for p in schema_problems(service)]
    return [f"{kind} {name}: {p}" for p in problems]


def _deployment_problems(spec: dict[str, Any], path: str) -> list[str]:
    problems = []
    if spec.get("restartPolicy") not in (None, "Always"):
        problems.append(f"{path}.restartPolicy: the operator's Deployments accept only Always, found {spec['restartPolicy']!r}")
    if spec.get("activeDeadlineSeconds") is not None:
        problems.append(f"{path}.activeDeadlineSeconds: not allowed in a Deployment's pod template")
    return problems


def _crd_schema(kind: str) -> dict[str, Any] | None:
    import yaml

    try:
        import dask_kubernetes
    except ImportError:
        return None
    path = Path(dask_kubernetes.__file__).parent / "operator" / "customresources" / f"{kind.lower()}.yaml"
    crd = yaml.safe_load(path.read_text())
    return next(v["schema"]["openAPIV3Schema"] for v in crd["spec"]["versions"] if v["name"] == "v1")


def _closed(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that lists its properties: the API server prunes
    unknown fields of a structural CRD silently, so a misspelt field would be lost without a word; here it is an error."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _retrieve(uri: str) -> Any:
    """The CRD's `python://` references: the operator's templates.yaml (its own definitions, closed as above); a core
    Kubernetes type (PodSpec, ServiceSpec) is any object here, since it is checked as a Pod or Service on its own."""
    import yaml
    from referencing import Resource

    if uri.endswith("templates.yaml"):
        import dask_kubernetes

        path = Path(dask_kubernetes.__file__).parent / "operator" / "customresources" / "templates.yaml"
        contents = _closed(yaml.safe_load(path.read_text()))
    else:
        contents = {"definitions": _AnyDefinition()}
    return Resource.opaque(contents)


class _AnyDefinition(dict):
    """Every definition name resolves to the empty schema (anything)."""

    def __missing__(self, key: str) -> dict[str, Any]:
        return {}


def _against(schema: dict[str, Any], body: dict[str, Any]) -> list[str]:
    """The operator CRD's schema, validated by jsonschema (OpenAPI v3 structural schemas are JSON Schema draft 4 subsets)."""
    from jsonschema import Draft4Validator
    from referencing import Registry

    validator = Draft4Validator(_closed(schema), registry=Registry(retrieve=_retrieve))
    own = {k: v for k, v in body.items() if k not in ("apiVersion", "kind", "metadata")}  # the API server's fields: checked above
    problems = []
    for error in sorted(validator.iter_errors(own), key=lambda e: list(e.absolute_path)):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        if error.validator == "additionalProperties":
            known = ", ".join(sorted(error.schema.get("properties", {})))
            for key in sorted(set(error.instance) - set(error.schema.get("properties", {}))):
                problems.append(f"{path}.{key}: unknown field (the operator's CRD has {known})")
        elif error.validator == "required":
            problems.append(f"{path}.{error.message.split(chr(39))[1]}: required by the operator's CRD")
        else:
            problems.append(f"{path or '.'}: {error.message}")
    return problems


def _embedded(body: dict[str, Any], core_type: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, value) of each PodSpec or ServiceSpec a DaskCluster or DaskWorkerGroup holds."""
    spec = body.get("spec") or {}
    groups = {"spec.worker": spec.get("worker"), "spec.scheduler": spec.get("scheduler")}
    key = "spec" if core_type == "PodSpec" else "service"
    return [(f"{path}.{key}", group[key]) for path, group in groups.items() if isinstance(group, dict) and isinstance(group.get(key), dict)]


def render_dask_clusters(ctx: RunContext, out_dir: Path) -> list[Path]:
    """What a run's `dask` steps create on the site themselves, beside the engine's files: on Kubernetes with
    `dask.mode: jobs`, `dask/<task>.yaml` (the worker pods, or the DaskCluster where the site runs the operator).
    Written by the driver for every engine; nothing elsewhere (SLURM worker jobs are dask-jobqueue's to write)."""
    tasks = [t for t in ctx.tasks if t.dask is not None and t.dask.mode == "jobs"]
    if not tasks:
        return []

    k8s = ctx.site.kubernetes
    written = []
    (out_dir / "dask").mkdir(parents=True, exist_ok=True)
    for task in tasks:
        settings = ctx.dask_settings(task)
        path = out_dir / "dask" / f"{task.id}.yaml"
        if settings["operator"]:
            bodies = settings["cluster_resources"]
            what = (f"The DaskCluster the step {task.display} creates in namespace {k8s.namespace} (dask-kubernetes' KubeCluster; "
                    "the Dask operator runs its scheduler and workers). At run time the name gains a random suffix.")
        else:
            address = f"tcp://STEP-POD-IP:{settings['port']}"
            bodies = worker_pods(settings, address, "00000")
            what = (f"The worker pods the step {task.display} creates in namespace {k8s.namespace} (runtime/dask_pods.py); "
                    f"its own pod runs the Dask scheduler. At run time {address} is that pod's address and 00000 a random id.")
        write_manifests(path, bodies, what + f"\nBuilt from site {ctx.site.name}.")
        written.append(path)
    return written
