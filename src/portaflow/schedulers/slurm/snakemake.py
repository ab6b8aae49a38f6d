"""Snakemake on SLURM: the slurm executor plugin's per-rule resources and profile settings.

The plugin composes its own sbatch line from resources of its own names; each is filled from the same
SlurmScheduler method that writes Parsl's job scripts (constraint, memory rule, GPU request, walltime), so
both engines ask SLURM for the same job (tests/unit/test_engine_options.py compares them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from portaflow.plan.model import Task
from portaflow.schedulers.base import common_rule_resources, snakemake_jobname_prefix

if TYPE_CHECKING:
    from portaflow.schedulers.context import RunContext
    from portaflow.schedulers.slurm import SlurmScheduler


def rule_resources(scheduler: SlurmScheduler, task: Task) -> dict[str, Any]:
    """The SLURM plugin's resource names; what it has no name for goes into slurm_extra.

    The plugin refuses managed flags in slurm_extra (--gres, --gpus, --qos, --mem...), so each
    of the site's rules maps onto the plugin's own resource where one exists.
    """
    site = scheduler.site
    r = task.resources
    res = common_rule_resources(task)
    res.update({"slurm_partition": scheduler.partition_name(task.partition), "cpus_per_task": r.cores, "nodes": r.nodes})
    clusters = scheduler.clusters(task.partition)
    if clusters:  # the plugin submits with --clusters and cancels on them; its sacct polls every cluster
        res["clusters"] = clusters
    account, qos = scheduler.account(task.partition), scheduler.qos(task.partition, r)
    if account:
        res["slurm_account"] = account
    if qos:
        res["qos"] = qos
    if site.slurm.memory_rule == "per_cpu":
        del res["mem_mb"]
        res["mem_mb_per_cpu"] = scheduler.memory_per_cpu_mib(r)
    elif site.slurm.memory_rule == "none":
        res["mem_mb"] = 0  # the plugin writes no --mem for 0 (and Snakemake's default of 1000 MB would be one)
    constraint = scheduler.constraint(task.partition)
    if constraint:
        res["constraint"] = constraint
    extra: list[str] = []
    if r.gpus:
        directive = scheduler.gpu_directives(r)[0]
        flag, _, value = directive.partition("=")
        if flag == "--gres":
            res["gres"] = value
        elif flag == "--gpus":
            # the plugin writes --gpus=<gpu_model>:<gpu>: the model is whatever the site's template put there
            # (`--gpus={model}:{n}`, or a fixed `--gpus=l40s:{n}`), not only a step's own gpu_model
            model, _, count = value.rpartition(":")
            res["gpu"] = int(count) if count.isdigit() else count
            if model:
                res["gpu_model"] = model
        else:
            extra.append(directive)
    else:
        res["tasks"] = r.nodes  # one per node, as directives() asks (fewer tasks than nodes would shrink the job)
    extra += scheduler.time_min_directives(r)
    if site.slurm.reservation:
        extra.append(f"--reservation={site.slurm.reservation}")
    extra += scheduler.extra_directives(task.partition)
    if extra:
        res["slurm_extra"] = scheduler.shell_words(extra)
    return res


def executor_profile(scheduler: SlurmScheduler, ctx: RunContext) -> dict[str, Any]:
    """The SLURM plugin's settings: polling paced by the profile, account and status command where it decides them."""
    site = scheduler.site
    cfg = scheduler.plugin_settings(ctx)
    # The plugin's own first wait and the interval it backs off from (+10 s each round in which no
    # job ended), else a fixed 40 s: the profile's polling interval decides, as for Parsl.
    cfg["slurm-init-seconds-before-status-checks"] = max(1, site.polling.interval)
    cfg["slurm-no-requeue"] = True  # as directives() asks every job (schedulers.slurm.NO_REQUEUE says why)
    # Every job named after the run, so that a rerun after `kill -9` of the driver finds and cancels it.
    cfg["slurm-jobname-prefix"] = snakemake_jobname_prefix(ctx.run_id)
    if not site.account:
        cfg["slurm-no-account"] = True
    if site.slurm.status_command != "auto":
        cfg["slurm-status-command"] = site.slurm.status_command
    return cfg
