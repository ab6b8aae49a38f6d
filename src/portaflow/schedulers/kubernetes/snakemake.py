"""Snakemake on Kubernetes: portaflow's kubernetes executor plugin's resources and settings, the shell of its jobs
(which see no shared filesystem), the launch file it completes each Job from, and render's capture."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from portaflow.errors import InputError
from portaflow.plan.model import Task
from portaflow.schedulers.base import common_rule_resources
from portaflow.schedulers.kubernetes.manifests import image_reference, write_manifests
from portaflow.schedulers.kubernetes.snakemake_jobs import LAUNCH_SETTING, launch_file
from portaflow.schedulers.kubernetes.storage import staged_directory, storage_profile

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext


def rule_resources(ctx: RunContext, task: Task) -> dict[str, Any]:
    """The kubernetes plugin's resources (mem_mb replaces the generic one where both are merged).

    The plugin writes memory as '{mem_mb}M' (10^6 bytes): rounded up so a pod never gets less
    than the MiB the plan checked. scale=0 makes it set limits equal to requests.
    """
    r = task.resources
    res = common_rule_resources(task)
    res.update({"mem_mb": math.ceil(r.memory_mib * 1.048576), "scale": 0})
    if r.gpus:
        res["gpu"] = r.gpus
        res["gpu_manufacturer"] = gpu_manufacturer(ctx, task.partition)
    return res


def gpu_manufacturer(ctx: RunContext, partition: str) -> str:
    """The plugin names GPUs by manufacturer (nvidia.com/gpu or amd.com/gpu) and knows no other resource (the partition's
    node pool's resource, else the site's: `KubernetesScheduler.gpu_resource`)."""
    resource = ctx.scheduler.gpu_resource(partition)
    if resource not in ("nvidia.com/gpu", "amd.com/gpu"):
        raise InputError(f"site {ctx.site.name}: Snakemake's kubernetes plugin requests GPUs only as nvidia.com/gpu or amd.com/gpu, "
                         f"not {resource!r} (kubernetes.gpu_resource or the node pool's); use --engine parsl")
    return resource.split(".", 1)[0]


PLUGIN = "portaflow-kubernetes"
"""portaflow's executor plugin (src/snakemake_executor_plugin_portaflow_kubernetes): the upstream kubernetes plugin,
whose Jobs it completes from the profile; its settings are the upstream ones under this prefix."""


def executor_profile(ctx: RunContext) -> dict[str, Any]:
    """The plugin's settings; what it has no setting for is added at its API call (schedulers.kubernetes.snakemake_jobs)."""
    site, k8s = ctx.site, ctx.site.kubernetes
    images = sorted({image_reference(site, t.container or k8s.default_container) for t in ctx.tasks})
    if len(images) > 1:
        raise InputError(f"Snakemake's kubernetes plugin runs every job in one image (--container-image); "
                         f"these steps need {len(images)}: {', '.join(images)}. Use --engine parsl, or one container for every step")
    cfg: dict[str, Any] = {
        **ctx.scheduler.plugin_settings(ctx),
        f"{PLUGIN}-namespace": k8s.namespace,
        f"{PLUGIN}-cpu-scalar": 1.0,  # requests = the cores the plan checked against the node pool
        "container-image": images[0] if images else image_reference(site, k8s.default_container),
        **storage_profile(ctx),
    }
    if k8s.service_account:
        cfg[f"{PLUGIN}-service-account-name"] = k8s.service_account
    if k8s.volume_claims:
        cfg[f"{PLUGIN}-persistent-volumes"] = [f"{v.claim}:{v.mount_path}" for v in k8s.volume_claims]
    return cfg


def job_script(ctx: RunContext, task: Task) -> str:
    """A job's shell on Kubernetes: no shared filesystem, so no log or marker files on the driver's paths.

    The step runs where Snakemake stages the store's files (schedulers.kubernetes.storage.staged_directory).
    Output goes to the pod's log (the plugin saves failed jobs' logs under .snakemake/auxiliary/kubernetes-logs,
    which the engine copies to the step's log).
    """
    return dataclasses.replace(ctx, workdir=staged_directory(ctx)).shell_line(task)


def run_profile(ctx: RunContext, profile: dict[str, Any]) -> dict[str, Any]:
    """The profile a run uses: it names the run's launch file (written here, beside the rendered Snakefile), from which
    the plugin completes each Job."""
    out_dir = ctx.run_dir / "snakemake"
    out_dir.mkdir(parents=True, exist_ok=True)
    launch = out_dir / "launch.json"
    launch.write_text(json.dumps(launch_file(ctx), indent=1, sort_keys=True))
    return {**profile, LAUNCH_SETTING: str(launch)}


def render_kubernetes_jobs(ctx: RunContext, jobs_dir: Path, profile: dict[str, Any]) -> Path:
    """Every task's Job as the plugin's run_job builds it, completed from the profile and checked
    (schedulers/kubernetes/capture.py: the plugin's executor, constructed as in a run, with recording API clients)."""
    from portaflow.schedulers.kubernetes.capture import capture

    jobs_dir.mkdir(parents=True, exist_ok=True)
    jobs = [{"rule": task.id, "jobid": index, "cores": task.resources.cores, "resources": ctx.scheduler.snakemake_resources(ctx, task)}
            for index, task in enumerate(ctx.tasks, start=1)]
    bodies = capture({"snakemake": {"profile": profile, "jobs": jobs}}, launch_file(ctx))["snakemake"]
    path = jobs_dir / "jobs.yaml"
    write_manifests(path, bodies, (
        f"The Jobs snakemake-executor-plugin-kubernetes creates (its own run_job, in portaflow's plugin {PLUGIN}, a recording "
        f"BatchV1Api), completed from site {ctx.site.name}.\nThe container's command line is a placeholder: Snakemake writes it "
        "at run time (it needs the object store)."))
    return path
