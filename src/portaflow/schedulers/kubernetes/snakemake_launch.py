"""Snakemake's kubernetes executor plugin, completed from the site profile at its one API call.

The plugin (snakemake-executor-plugin-kubernetes) builds each job's V1Job itself and has settings for
namespace, service account, volume claims and one image only. Snakemake is therefore started through
`python -m portaflow.schedulers.kubernetes.snakemake_launch`, which wraps `BatchV1Api.create_namespaced_job` so
that every Job is completed (node pool, pull secrets and policy, labels, TTL, backoff, deadline) and
checked (schedulers.kubernetes) before the real call; then Snakemake's own CLI runs unchanged.

Rendering calls the plugin's real `Executor.run_job` for each task with a recording client. What it
cannot reach offline is Snakemake's own scheduler (it needs the object store), so the job's command
line (`snakemake --target-jobs RULE: ...`, written by Snakemake at run time) is a placeholder there.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from portaflow.plan.model import TaskResources

_TARGET = re.compile(r"--target-jobs\s+['\"]?([A-Za-z_][A-Za-z0-9_]*):")


def job_specs(tasks: list[Any]) -> dict[str, dict[str, Any]]:
    """What completing a job needs to know of each rule (a task): its request, partition and walltime."""
    return {t.id: {"request": t.resources.__dict__, "partition": t.partition, "walltime_s": t.resources.walltime_s} for t in tasks}


def completing(create: Callable[..., Any], scheduler: Any, specs: dict[str, dict[str, Any]], run_id: str) -> Callable[..., Any]:
    """Wrap a create_namespaced_job(namespace, body) so the body is completed and checked first."""
    from portaflow.schedulers.kubernetes.manifests import manifest, raise_if_invalid

    def create_namespaced_job(api: Any, namespace: str, body: Any, *args: Any, **kwargs: Any) -> Any:
        command = " ".join(body.spec.template.spec.containers[0].args or [])
        found = _TARGET.search(command)
        spec = specs.get(found.group(1)) if found else None
        if spec is None:
            raise RuntimeError(f"portaflow: cannot tell which step Snakemake job {body.metadata.name} runs (no --target-jobs in {command[:200]!r})")
        request = TaskResources(**spec["request"])
        scheduler.complete(body, request, spec["partition"], run_id, spec["walltime_s"], task_id=found.group(1))
        raise_if_invalid(manifest(body))
        return create(api, namespace, body, *args, **kwargs)

    return create_namespaced_job


def install(scheduler: Any, specs: dict[str, dict[str, Any]], run_id: str) -> None:
    """Patch the client class the plugin instantiates (in this process only: the Snakemake driver)."""
    from kubernetes.client import BatchV1Api

    BatchV1Api.create_namespaced_job = completing(BatchV1Api.create_namespaced_job, scheduler, specs, run_id)


def render_jobs(ctx: Any, profile: dict[str, Any], resources: Callable[[Any], dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task's Job as the plugin's own run_job builds it, completed and checked; recorded, not sent."""
    from snakemake_executor_plugin_kubernetes import Executor, PersistentVolume

    from portaflow.schedulers.kubernetes.manifests import manifest

    recorded: list[dict[str, Any]] = []

    def record(api: Any, namespace: str, body: Any, *args: Any, **kwargs: Any) -> Any:
        recorded.append(manifest(body))
        return body

    create = completing(record, ctx.scheduler, job_specs(ctx.tasks), ctx.run_id)
    plugin = object.__new__(Executor)  # the plugin's code, without the constructor that reads a kubeconfig and creates a Secret
    plugin.__dict__.update(
        k8s_cpu_scalar=float(profile["kubernetes-cpu-scalar"]),
        k8s_service_account_name=profile.get("kubernetes-service-account-name"),
        namespace=profile["kubernetes-namespace"],
        container_image=profile["container-image"],
        privileged=False,
        persistent_volumes=[PersistentVolume.parse(v) for v in profile.get("kubernetes-persistent-volumes", [])],
        secret_envvars={},
        run_namespace="00000000-0000-0000-0000-000000000000",  # a uuid4 per run; fixed for stable renders
        batchapi=SimpleNamespace(create_namespaced_job=lambda namespace, body: create(None, namespace, body)),
        lock=threading.Lock(),
        logger=SimpleNamespace(debug=lambda *a, **k: None, info=lambda *a, **k: None, error=lambda *a, **k: None),
        workflow=SimpleNamespace(deployment_settings=SimpleNamespace(deployment_method=frozenset())),
        report_job_submission=lambda info: None,
        format_job_exec=lambda job: (f"snakemake --target-jobs '{job.rule_name}:' ...  "
                                     "# Snakemake writes the full job command (storage, profile, sources) at run time"),
    )
    for index, task in enumerate(ctx.tasks, start=1):
        job = SimpleNamespace(rule_name=task.id, jobid=index, attempt=1, is_containerized=False,
                              resources={"_cores": task.resources.cores, "_nodes": 1, **resources(task)})
        Executor.run_job(plugin, job)
    return recorded


def launch_file(ctx: Any) -> dict[str, Any]:
    """What the launcher needs (the run's JSON file): the site as the user gave it, the run id, each rule's request."""
    return {"site": ctx.loaded_site.path, "overrides": ctx.loaded_site.overrides, "run_id": ctx.run_id, "tasks": job_specs(ctx.tasks)}
