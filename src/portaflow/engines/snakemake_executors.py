"""Snakemake, per scheduler: what each executor plugin reads from the profile and the rules, and what `render` captures.

Snakemake reaches a scheduler through an executor plugin (slurm, htcondor, kubernetes; none on the
local site), and each plugin has its own names for resources and settings. This module translates
the request `portaflow.schedulers` computes into those names: per-rule resources (`rule_resources`),
the plugin's profile settings (`executor_profile`), the shell of a job that does not see the driver's
filesystem (`remote_job_script`), and, for `render`, what the htcondor and kubernetes plugins hand to
the scheduler, captured at the hand-off (`capture_htcondor_submits`, `render_kubernetes_jobs`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

from portaflow.containers import container_call
from portaflow.engines.base import RunContext
from portaflow.engines.snakemake_storage import staged_directory, storage_profile
from portaflow.errors import InputError
from portaflow.plan.model import Task

_HTCONDOR_PLUGIN_RAW = frozenset({"request_memory", "request_disk", "request_gpus", "require_gpus", "requirements", "universe", "container_image"})
"""Submit commands the htcondor plugin takes from resources of the same name and writes unchanged."""

SnakemakeCommand = Callable[[list[str]], list[str]]
"""Extra Snakemake arguments -> the full command line that runs Snakemake on the rendered Snakefile and profile."""


# -- per-rule resources ------------------------------------------------------------------------
def rule_resources(ctx: RunContext, task: Task) -> dict[str, Any]:
    """Per-rule resources in the names Snakemake and its executor plugins read."""
    r = task.resources
    res: dict[str, Any] = {"mem_mb": r.memory_mib, "runtime": max(1, -(-r.walltime_s // 60))}
    if ctx.site.scheduler == "slurm":
        res.update(_slurm_resources(ctx, task))
        if "mem_mb_per_cpu" in res:
            del res["mem_mb"]
    elif ctx.site.scheduler == "htcondor":
        res.update(_htcondor_resources(ctx, task))
    elif ctx.site.scheduler == "kubernetes":
        res.update(_kubernetes_resources(ctx, task))
    elif r.gpus:
        res["gpu"] = r.gpus
    return res


def _slurm_resources(ctx: RunContext, task: Task) -> dict[str, Any]:
    """The SLURM plugin's resource names; what it has no name for goes into slurm_extra.

    The plugin refuses managed flags in slurm_extra (--gres, --gpus, --qos, --mem...), so each
    of the site's rules maps onto the plugin's own resource where one exists.
    """
    site = ctx.site
    r = task.resources
    res: dict[str, Any] = {"slurm_partition": task.partition, "cpus_per_task": r.cores, "nodes": r.nodes}
    if site.account:
        res["slurm_account"] = site.account
    if site.slurm.qos:
        res["qos"] = site.slurm.qos
    if site.slurm.memory_rule == "per_cpu":
        res["mem_mb_per_cpu"] = -(-r.memory_mib // r.cores)
    part_constraint = site.partitions[task.partition].constraint
    constraints = [c for c in (site.slurm.constraint, part_constraint) if c]
    if constraints:
        res["constraint"] = "&".join(constraints)
    extra: list[str] = []
    if r.gpus:
        directive = ctx.scheduler.gpu_directives(r)[0]
        flag, _, value = directive.partition("=")
        if flag == "--gres":
            res["gres"] = value
        elif flag == "--gpus":
            res["gpu"] = r.gpus
            if r.gpu_model:
                res["gpu_model"] = r.gpu_model
        else:
            extra.append(directive)
    else:
        res["tasks"] = 1
    if site.slurm.reservation:
        extra.append(f"--reservation={site.slurm.reservation}")
    extra += site.extra_directives
    if extra:
        res["slurm_extra"] = " ".join(extra)
    return res


def _htcondor_resources(ctx: RunContext, task: Task) -> dict[str, Any]:
    """The htcondor plugin's resources for the submit commands `schedulers.htcondor` computes.

    The plugin writes `request_*`, `require_gpus`, `requirements`, `universe` and `container_image`
    unchanged, and job attributes from `classad_<Name>` (a string becomes a ClassAd string). Other
    commands go through `htcondor_submit_<key>`, which puts quotes around string values (0.3.0):
    accounting_group is therefore sent as the three job attributes condor_submit itself sets, and a
    command the quoting would change is refused here rather than submitted wrong.
    """
    scheduler = ctx.scheduler
    call = container_call(ctx.site, task.container) if scheduler.runs_containers() else None
    commands = scheduler.commands(task.resources, task.partition, run_id=ctx.run_id, image=call.image if call else None)
    commands.pop("request_cpus")  # the plugin asks for the rule's threads
    res: dict[str, Any] = {}
    group, user = commands.pop("accounting_group", None), commands.pop("accounting_group_user", None)
    if group:
        user = user or "$ENV(USER)"  # condor_submit's default: the submitting user (expanded when submitting)
        res.update({"classad_AcctGroup": group, "classad_AcctGroupUser": user, "classad_AccountingGroup": f"{group}.{user}"})
    for key, value in commands.items():
        if key in _HTCONDOR_PLUGIN_RAW:
            res[key] = int(value) if value.isdigit() else value
        elif key.startswith("+") and (value.isdigit() or re.fullmatch(r'"[^"\\]*"', value)):
            res[f"classad_{key[1:]}"] = int(value) if value.isdigit() else value[1:-1]
        elif not key.startswith("+") and value.isdigit():
            res[f"htcondor_submit_{key}"] = int(value)
        else:
            raise InputError(
                f"site {ctx.site.name}: '{key} = {value}' cannot be handed to Snakemake's htcondor plugin unchanged "
                "(it writes job attributes only as plain strings or integers, and quotes every other string value it passes on); "
                "use --engine parsl on this site, or drop the setting")
    return res


def _kubernetes_resources(ctx: RunContext, task: Task) -> dict[str, Any]:
    """The kubernetes plugin's resources (mem_mb replaces the generic one where both are merged).

    The plugin writes memory as '{mem_mb}M' (10^6 bytes): rounded up so a pod never gets less
    than the MiB the plan checked. scale=0 makes it set limits equal to requests.
    """
    r = task.resources
    res: dict[str, Any] = {"mem_mb": math.ceil(r.memory_mib * 1.048576), "scale": 0}
    if r.gpus:
        res["gpu"] = r.gpus
        res["gpu_manufacturer"] = _gpu_manufacturer(ctx)
    return res


def _gpu_manufacturer(ctx: RunContext) -> str:
    """The plugin names GPUs by manufacturer (nvidia.com/gpu or amd.com/gpu) and knows no other resource."""
    resource = ctx.site.kubernetes.gpu_resource
    if resource not in ("nvidia.com/gpu", "amd.com/gpu"):
        raise InputError(f"site {ctx.site.name}: Snakemake's kubernetes plugin requests GPUs only as nvidia.com/gpu or amd.com/gpu, "
                         f"not kubernetes.gpu_resource {resource!r}; use --engine parsl")
    return resource.split(".", 1)[0]


# -- the profile's executor settings -----------------------------------------------------------
def executor_profile(ctx: RunContext) -> dict[str, Any]:
    """The profile settings of the site's executor: the local machine's size, or the plugin, its limits and polling."""
    site = ctx.site
    if site.scheduler == "local":
        part = site.partitions[site.default_partition]
        return {"cores": part.cores_per_node, "resources": [f"mem_mb={part.memory_per_node}"]}
    if site.scheduler == "slurm":
        return _slurm_profile(ctx)
    if site.scheduler == "htcondor":
        return _htcondor_profile(ctx)
    if site.scheduler == "kubernetes":
        return _kubernetes_profile(ctx)
    raise NotImplementedError(f"Snakemake engine: scheduler {site.scheduler} is not supported yet")


def _plugin_settings(ctx: RunContext, executor: str) -> dict[str, Any]:
    """What every executor plugin is told: its name, how many jobs may wait at once, how often to poll."""
    site = ctx.site
    return {
        "executor": executor,
        "jobs": min(site.snakemake.jobs, site.polling.max_queued_jobs),
        "seconds-between-status-checks": site.polling.interval,
    }


def _slurm_profile(ctx: RunContext) -> dict[str, Any]:
    """The SLURM plugin's settings: polling paced by the profile, account and status command where it decides them."""
    site = ctx.site
    cfg = _plugin_settings(ctx, "slurm")
    # The plugin's own first wait and the interval it backs off from (+10 s each round in which no
    # job ended), else a fixed 40 s: the profile's polling interval decides, as for Parsl.
    cfg["slurm-init-seconds-before-status-checks"] = max(1, site.polling.interval)
    if not site.account:
        cfg["slurm-no-account"] = True
    if site.slurm.status_command != "auto":
        cfg["slurm-status-command"] = site.slurm.status_command
    return cfg


def _htcondor_profile(ctx: RunContext) -> dict[str, Any]:
    """The htcondor plugin's settings: its job logs go with the run's record; file transfer where nothing is shared."""
    cfg = _plugin_settings(ctx, "htcondor")
    cfg["htcondor-jobdir"] = str(ctx.run_dir / "htcondor")  # job logs go with the run's record
    if ctx.scheduler.transfers_files():
        cfg["shared-fs-usage"] = "none"  # the plugin then transfers each rule's inputs and outputs
    return cfg


def _kubernetes_profile(ctx: RunContext) -> dict[str, Any]:
    """The kubernetes plugin's settings; what it has no setting for is added at its API call
    (engines.snakemake_kubernetes)."""
    from portaflow.schedulers.kubernetes import image_reference

    site, k8s = ctx.site, ctx.site.kubernetes
    images = sorted({image_reference(site, t.container or k8s.default_container) for t in ctx.tasks})
    if len(images) > 1:
        raise InputError(f"Snakemake's kubernetes plugin runs every job in one image (--container-image); "
                         f"these steps need {len(images)}: {', '.join(images)}. Use --engine parsl, or one container for every step")
    cfg: dict[str, Any] = {
        **_plugin_settings(ctx, "kubernetes"),
        "kubernetes-namespace": k8s.namespace,
        "kubernetes-cpu-scalar": 1.0,  # requests = the cores the plan checked against the node pool
        "container-image": images[0] if images else image_reference(site, k8s.default_container),
        **storage_profile(ctx),
    }
    if k8s.service_account:
        cfg["kubernetes-service-account-name"] = k8s.service_account
    if k8s.volume_claims:
        cfg["kubernetes-persistent-volumes"] = [f"{v.claim}:{v.mount_path}" for v in k8s.volume_claims]
    return cfg


# -- jobs without the driver's filesystem ------------------------------------------------------
def jobs_see_driver_filesystem(ctx: RunContext) -> bool:
    """Whether a job can write the log, exit-status and marker files the driver reads.

    Not on Kubernetes (files go through the object store), nor on an HTCondor pool without a shared
    filesystem (HTCondor transfers each rule's files); there Snakemake's own log says what finished.
    """
    return not (ctx.site.scheduler == "kubernetes" or _no_shared_htcondor(ctx))


def remote_job_script(ctx: RunContext, task: Task) -> str:
    """The shell of a job that does not see the driver's filesystem (see jobs_see_driver_filesystem)."""
    if ctx.site.scheduler == "kubernetes":
        return _kubernetes_script(ctx, task)
    return _transfer_script(ctx, task)


def _no_shared_htcondor(ctx: RunContext) -> bool:
    """An HTCondor pool whose jobs see no shared filesystem (HTCondor transfers each rule's files)."""
    return ctx.site.scheduler == "htcondor" and ctx.scheduler.transfers_files()


def _transfer_script(ctx: RunContext, task: Task) -> str:
    """A job's shell on an HTCondor pool without a shared filesystem: HTCondor brings the inputs into the
    job's directory and takes the outputs back, so the step runs where the job starts and writes no log
    or marker on the driver's paths (its output comes back in the job's output file)."""
    return dataclasses.replace(ctx, workdir=Path(".")).shell_line(task)


def _kubernetes_script(ctx: RunContext, task: Task) -> str:
    """A job's shell on Kubernetes: no shared filesystem, so no log or marker files on the driver's paths.

    The step runs where Snakemake stages the store's files (engines.snakemake_storage.staged_directory).
    Output goes to the pod's log (the plugin saves failed jobs' logs under .snakemake/auxiliary/kubernetes-logs,
    which the engine copies to the step's log).
    """
    return dataclasses.replace(ctx, workdir=staged_directory(ctx)).shell_line(task)


# -- Kubernetes: Snakemake through portaflow's launcher ----------------------------------------
def kubernetes_launcher(ctx: RunContext, out_dir: Path) -> list[str]:
    """The command that starts Snakemake's CLI (arguments follow) through portaflow's launcher,
    which completes each Job at the plugin's API call; writes the launcher's file (launch.json)."""
    from portaflow.engines.snakemake_kubernetes import launch_file

    launch = out_dir / "launch.json"
    launch.write_text(json.dumps(launch_file(ctx), indent=1, sort_keys=True))
    return [sys.executable, "-m", "portaflow.engines.snakemake_kubernetes", str(launch), "--"]


# -- what render captures ----------------------------------------------------------------------
def capture_htcondor_submits(ctx: RunContext, out_dir: Path, snakemake_command: SnakemakeCommand, env: dict[str, str]) -> list[Path]:
    """Each rule's submit description as the htcondor plugin hands it to the bindings (engines.htcondor_capture).

    Snakemake runs in a scratch work directory, so rendering writes nothing in the real one and
    inputs from outside the workflow can be stood in by empty files; the scratch path is then
    written back as the work directory in the captured descriptions. `env` is the environment
    Snakemake runs in; the schedd's client settings are added to it.
    """
    import tempfile

    jobs_dir = out_dir / "jobs"
    with tempfile.TemporaryDirectory(prefix="portaflow-render-") as scratch:
        for path in ctx.plan.external_inputs:
            if not Path(path).is_absolute():
                (Path(scratch) / path).parent.mkdir(parents=True, exist_ok=True)
                (Path(scratch) / path).touch()
        # Status checks are not needed here (nothing runs); without them Snakemake stops at once.
        args = snakemake_command(["--immediate-submit", "--notemp", "--quiet", "--seconds-between-status-checks", "0"])
        args[args.index("--directory") + 1] = scratch
        # A fixed hash seed: Snakemake writes some option sets (--rerun-triggers...) in set order.
        env = {**env, **ctx.scheduler.client_environment(resolve=False), "PYTHONHASHSEED": "0"}
        result = subprocess.run([sys.executable, "-m", "portaflow.engines.htcondor_capture", str(jobs_dir), *args[3:]],
                                capture_output=True, text=True, env=env, cwd=scratch)
        if result.returncode != 0:
            raise RuntimeError(f"capturing the htcondor plugin's submit descriptions failed:\n{result.stdout}\n{result.stderr}")
        written = []
        for path in sorted(jobs_dir.glob("*.sub")):
            text = path.read_text()
            # Without a shared filesystem Snakemake names the Snakefile relative to the work directory.
            snakefile = out_dir.resolve() / "Snakefile"
            text = text.replace(os.path.relpath(snakefile, os.path.realpath(scratch)), os.path.relpath(snakefile, ctx.workdir))
            text = text.replace(os.path.realpath(scratch), str(ctx.workdir)).replace(scratch, str(ctx.workdir))
            # Snakemake's per-run temporary names (e.g. .snakemake/tmp.0z1w7wdi) vary: replaced so golden files stay stable.
            path.write_text(re.sub(r"\btmp[._]?[a-z0-9_]{8}\b", "tmp<random>", text))
            written.append(path)
    return written


def render_kubernetes_jobs(ctx: RunContext, jobs_dir: Path, profile: dict[str, Any]) -> Path:
    """Every task's Job as the plugin's run_job builds it, completed from the profile and checked."""
    from portaflow.engines.snakemake_kubernetes import render_jobs
    from portaflow.schedulers.kubernetes import write_manifests

    jobs_dir.mkdir(parents=True, exist_ok=True)
    bodies = render_jobs(ctx, profile, lambda task: rule_resources(ctx, task))
    path = jobs_dir / "jobs.yaml"
    write_manifests(path, bodies, (
        f"The Jobs snakemake-executor-plugin-kubernetes creates (its own run_job, a recording BatchV1Api), completed from site "
        f"{ctx.site.name}.\nThe container's command line is a placeholder: Snakemake writes it at run time (it needs the object store)."))
    return path
